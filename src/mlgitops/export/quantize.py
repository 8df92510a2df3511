"""The quantized model: tree splits as bin indices, leaves (or LR weights) as int8/int16.

Splits are lossless: per feature, the sorted thresholds any split uses form a table, a value's
bin is the number of thresholds below it, and `x <= table[k]` iff `bin(x) <= k` (HGB trains on
such bins). Categorical codes are their own bins. Only leaf values are rounded: one scale per
tree, error per leaf at most scale/2. Logistic regression keeps its preprocessing in float64
and rounds `coef_` to one int8 grid (per-tensor scale), the only weights it has.

The file (`pack_trees`, `pack_linear`) is read back by `load_quantized`, which rebuilds the same
ExportModel/BinnedTrees and scores with the same functions, so the ledger describes the bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlgitops.errors import ArtifactError
from mlgitops.export.extract import from_pipeline
from mlgitops.export.ir import (
    LEAF,
    CategoricalInput,
    ExportModel,
    Input,
    Linear,
    NumericInput,
    Trees,
    encode,
    score_encoded,
)

MAGIC = b"MLGQ2\n"


@dataclass(frozen=True)
class BinnedTrees:
    """Trees over bin indices; `tables[f]` is None for a categorical feature (code = bin)."""

    tables: tuple[np.ndarray | None, ...]
    trees: Trees  # thresholds are bin indices; leaves are q * scale
    bin_bits: int  # 8 or 16; the all-ones bin means missing
    leaf_bits: int  # 8, 16, or 64 (float64 leaves: the lossless float export)
    q: np.ndarray  # integer leaf values (value / scale of its tree), zero for interior nodes
    scales: np.ndarray  # per tree

    @property
    def missing_bin(self) -> int:
        return (1 << self.bin_bits) - 1

    def bins(self, x: np.ndarray) -> np.ndarray:
        """Encoded matrix -> bins (float, NaN for missing), as the integer scorers compute them."""
        out = np.full(x.shape, np.nan)
        for f, table in enumerate(self.tables):
            column = x[:, f]
            present = ~np.isnan(column)
            if table is None:
                out[present, f] = column[present]
            else:
                out[present, f] = np.searchsorted(table, column[present], side="left")
        return out


def _tables(model: ExportModel, trees: Trees) -> tuple[np.ndarray | None, ...]:
    tables: list[np.ndarray | None] = []
    for f, spec in enumerate(model.inputs):
        on_f = (trees.feature == f) & ~trees.categorical
        if trees.categorical[trees.feature == f].any():
            if on_f.any():
                raise ArtifactError(
                    f"feature {spec.name!r} has both numeric and categorical splits"
                )
            tables.append(None)
        else:
            tables.append(np.unique(trees.threshold[on_f]))
    return tuple(tables)


def bin_trees(model: ExportModel, leaf_bits: int) -> BinnedTrees:
    trees = model.model
    assert isinstance(trees, Trees)
    tables = _tables(model, trees)
    widest = max([len(t) for t in tables if t is not None] + [0])
    codes = [c for s in model.inputs if isinstance(s, CategoricalInput) for c in s.values]
    widest = max(widest, *[int(c) + 1 for c in codes if not math.isnan(c)], 0)
    bin_bits = 8 if widest < 255 else 16
    threshold = trees.threshold.copy()
    for node in np.flatnonzero((trees.feature != LEAF) & ~trees.categorical):
        table = tables[trees.feature[node]]
        assert table is not None
        threshold[node] = float(np.searchsorted(table, trees.threshold[node]))
    ends = [*trees.roots[1:], len(trees.feature)]
    scales = np.ones(trees.n_trees)
    q = np.zeros(len(trees.feature))
    value = trees.value.copy()
    if leaf_bits != 64:
        qmax = (1 << (leaf_bits - 1)) - 1
        for t, (start, end) in enumerate(zip(trees.roots, ends, strict=True)):
            leaves = trees.value[start:end]
            peak = float(np.max(np.abs(leaves)))
            scales[t] = peak / qmax if peak > 0 else 1.0
            q[start:end] = np.round(leaves / scales[t])
            value[start:end] = q[start:end] * scales[t]
    binned = replace(trees, threshold=threshold, value=value)
    return BinnedTrees(tables, binned, bin_bits, leaf_bits, q, scales)


def score_binned(model: ExportModel, binned: BinnedTrees, x: np.ndarray) -> np.ndarray:
    trees = binned.trees
    return trees.scores_from_leaves(trees.leaf_values(binned.bins(x)))


def quantize_linear(pipeline: Any, bits: int) -> tuple[ExportModel, np.ndarray, float]:
    """The LR with coef_ on an int grid: (model, integer weights, scale)."""
    coef = np.asarray(pipeline[-1].coef_, np.float64).ravel()
    qmax = (1 << (bits - 1)) - 1
    scale = float(np.max(np.abs(coef))) / qmax or 1.0
    q = np.round(coef / scale)
    return from_pipeline(pipeline, coef=q * scale), q, scale


def _int_dtype(values: np.ndarray, signed: bool) -> np.dtype:
    for bits in (8, 16, 32):
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if values.size == 0 or (values.min() >= lo and values.max() <= hi):
            return np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")
    raise ArtifactError("value out of range for the packed format")


def _header_inputs(model: ExportModel) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in model.inputs:
        if isinstance(spec, NumericInput):
            missing = None if math.isnan(spec.missing) else spec.missing
            out.append(
                {"name": spec.name, "kind": "numeric", "missing": missing, "float32": spec.float32}
            )
        else:
            out.append(
                {"name": spec.name, "kind": "categorical", "categories": list(spec.categories)}
            )
    return out


def pack(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> bytes:
    """MAGIC, u32 header length, JSON header (array dtypes/shapes/offsets), raw arrays."""
    index, blobs, offset = {}, [], 0
    for name, array in arrays.items():
        raw = np.ascontiguousarray(array).tobytes()
        index[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps({**header, "arrays": index}, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + len(text).to_bytes(4, "little") + text + b"".join(blobs)


def _preorder(trees: Trees) -> np.ndarray:
    """Old node ids in pre-order (node, left subtree, right subtree) per tree, roots in order."""
    order: list[int] = []
    for root in trees.roots:
        stack = [int(root)]
        while stack:
            node = stack.pop()
            order.append(node)
            if trees.feature[node] != LEAF:
                stack += [int(trees.right[node]), int(trees.left[node])]
    return np.array(order, np.int64)


def _in_preorder(trees: Trees) -> tuple[Trees, np.ndarray | None]:
    """The same trees with every left child at node + 1, and the old ids in the new order
    (None when they already are so: sklearn and HGB build them that way)."""
    interior = np.flatnonzero(trees.feature != LEAF)
    if np.array_equal(trees.left[interior], interior + 1) and np.all(
        trees.right[interior] > interior + 1
    ):
        return trees, None
    order = _preorder(trees)
    new_id = np.full(len(trees.feature), LEAF, np.int64)
    new_id[order] = np.arange(len(order))

    def child(ids: np.ndarray) -> np.ndarray:
        return np.where(ids[order] == LEAF, LEAF, new_id[ids[order]]).astype(np.int32)

    reordered = replace(
        trees,
        feature=trees.feature[order],
        threshold=trees.threshold[order],
        categorical=trees.categorical[order],
        cat_sets=tuple(trees.cat_sets[i] for i in order),
        missing_left=trees.missing_left[order],
        left=child(trees.left),
        right=child(trees.right),
        value=trees.value[order],
        roots=new_id[trees.roots].astype(np.int32),
    )
    return reordered, order


def pack_trees(model: ExportModel, binned: BinnedTrees) -> bytes:
    """Nodes in pre-order: the left child is node + 1, only the right child's offset is stored."""
    if len(binned.trees.feature) != len(binned.q):
        raise ArtifactError("binned trees and their integer leaves differ in length")
    trees, order = _in_preorder(binned.trees)
    q_values = binned.q if order is None else binned.q[order]
    interior = trees.feature != LEAF
    cats = [sorted(s) for s in trees.cat_sets]
    split = np.where(interior, trees.threshold, 0).astype(np.int64)
    bitsets: list[np.ndarray] = []
    for node in np.flatnonzero(trees.categorical):
        bits = np.zeros(256, dtype=bool)
        bits[cats[node]] = True
        split[node] = len(bitsets)
        bitsets.append(np.packbits(bits, bitorder="little"))
    flags = interior.astype(np.uint8) | trees.categorical << 1 | trees.missing_left << 2
    # Per interior node only, in node order (leaves have none): `flags` says which nodes those are.
    feature, split = trees.feature[interior], split[interior]
    right_offset = (trees.right - np.arange(len(interior)))[interior]
    arrays = {
        "feature": feature.astype(_int_dtype(feature, False)),
        "split": split.astype(_int_dtype(split, False)),
        "flags": flags.astype(np.uint8),
        "right_offset": right_offset.astype(_int_dtype(right_offset, False)),
        "roots": trees.roots.astype(_int_dtype(trees.roots, False)),
        "thresholds": np.concatenate([t for t in binned.tables if t is not None] or [np.zeros(0)]),
        "table_sizes": np.array([-1 if t is None else len(t) for t in binned.tables], "<i4"),
        "bitsets": np.array(bitsets, np.uint8).reshape(-1, 32),
        "scales": binned.scales.astype("<f8"),
    }
    q = q_values[~interior]
    arrays["leaves"] = (
        trees.value[~interior].astype("<f8")
        if binned.leaf_bits == 64
        else q.astype(_int_dtype(q, True))
    )
    codes = {
        s.name: [*s.values, s.unknown, s.missing]
        for s in model.inputs
        if isinstance(s, CategoricalInput)
    }
    header = {
        "format": "trees",
        "model_type": model.model_type,
        "inputs": _header_inputs(model),
        "codes": codes,
        "aggregate": trees.aggregate,
        "base": trees.base,
        "bin_bits": binned.bin_bits,
        "leaf_bits": binned.leaf_bits,
    }
    return pack(arrays, header)


def pack_linear(model: ExportModel, q: np.ndarray, scale: float, bits: int) -> bytes:
    linear = model.model
    numeric = [j for j, s in enumerate(model.inputs) if isinstance(s, NumericInput)]
    header = {
        "format": "linear",
        "model_type": model.model_type,
        "inputs": _header_inputs(model),
        "intercept": linear.intercept,  # type: ignore[union-attr]
        "bits": bits,
        "coef_scale": scale,
        # Category tables are integer multiples of coef_scale (one one-hot weight each).
        "category_weights": {
            s.name: [round(v / scale) for v in (*s.values, s.unknown, s.missing)]
            for s in model.inputs
            if isinstance(s, CategoricalInput)
        },
    }
    arrays = {
        "coef": q.astype(_int_dtype(q, True)),
        # Numeric terms fold the imputer and standardiser with the weight: float64, 3 each.
        "numeric_terms": np.array(
            [[linear.slope[j], linear.offset[j], linear.missing_term[j]] for j in numeric],  # type: ignore[union-attr]
            "<f8",
        ).reshape(-1, 3),
    }
    return pack(arrays, header)


@dataclass(frozen=True)
class QuantizedModel:
    """A model read from a `model.qN.bin`: scores raw records as the export stage gated them.

    `model.inputs` encode raw values; for trees `model.model` is `binned.trees` (bin-index
    thresholds, quantized leaves), for logistic regression the quantized linear model.
    """

    source: str
    bits: int
    model: ExportModel
    binned: BinnedTrees | None

    @property
    def names(self) -> list[str]:
        return self.model.names

    def score_encoded(self, x: np.ndarray) -> np.ndarray:
        if self.binned is not None:
            return score_binned(self.model, self.binned, x)
        return score_encoded(self.model, x)

    def score(self, columns: list[list[object]]) -> np.ndarray:
        """Raw columns (one list per feature, in `names` order; None/NaN = missing) -> scores."""
        return self.score_encoded(encode(self.model.inputs, columns))

    def score_records(self, records: Iterable[Mapping[str, object]]) -> np.ndarray:
        """Rows as {feature: value}; an absent key is missing, an unseen category is unknown."""
        rows = list(records)
        return self.score([[row.get(name) for row in rows] for name in self.names])


def _fail(source: str, what: str) -> ArtifactError:
    return ArtifactError(f"{source}: {what}")


def _offset(item: tuple[str, Any]) -> tuple[int, int]:
    """Where an array starts, then how long it is: an empty array shares its offset with the
    next one and must come first (bad entries sort first, then fail)."""
    entry = item[1]
    offset = entry.get("offset") if isinstance(entry, dict) else None
    if not isinstance(offset, int):
        return -1, -1
    try:
        size = math.prod(int(n) for n in entry["shape"]) * np.dtype(entry["dtype"]).itemsize
    except (KeyError, TypeError, ValueError):
        return offset, -1
    return offset, size


def _unpack(data: bytes, source: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of `pack`: header and arrays, every offset and size checked against the file."""
    if data[: len(MAGIC)] != MAGIC:
        found = data[:6].decode("ascii", "replace").strip()
        raise _fail(source, f"not an {MAGIC.decode().strip()} file (starts with {found!r})")
    start = len(MAGIC) + 4
    if len(data) < start:
        raise _fail(source, "truncated before the header length")
    size = int.from_bytes(data[len(MAGIC) : start], "little")
    if len(data) < start + size:
        raise _fail(source, f"truncated in the header ({len(data) - start} of {size} bytes)")
    try:
        header = json.loads(data[start : start + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(source, f"header is not JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), dict):
        raise _fail(source, "header has no 'arrays' index")
    body, end, arrays = data[start + size :], 0, {}
    for name, entry in sorted(header["arrays"].items(), key=_offset):
        try:
            dtype, shape, offset = np.dtype(entry["dtype"]), entry["shape"], int(entry["offset"])
            dims = [int(n) for n in shape]
        except (KeyError, TypeError, ValueError):
            raise _fail(source, f"array {name!r}: bad index entry {entry!r}") from None
        count = math.prod(dims)
        # Plain little-endian numbers only: a crafted dtype must not reach np.frombuffer.
        if (
            dtype.kind not in "iuf"
            or dtype.byteorder == ">"
            or offset != end
            or min(dims, default=0) < 0
        ):
            raise _fail(source, f"array {name!r}: unexpected dtype, shape or offset {entry!r}")
        end = offset + count * dtype.itemsize
        if end > len(body):
            raise _fail(source, f"truncated in array {name!r} ({len(body)} of {end} bytes)")
        arrays[name] = np.frombuffer(body, dtype, count, offset).reshape(dims)
    if end != len(body):
        raise _fail(source, f"{len(body) - end} bytes after the last array")
    return header, arrays


def _inputs(header: dict[str, Any], source: str, values: dict[str, list[float]]) -> list[Input]:
    """Header inputs -> encodings; `values[name]` is a categorical's [*known, unknown, missing]."""
    out: list[Input] = []
    for spec in header["inputs"]:
        name = spec["name"]
        if spec["kind"] == "numeric":
            missing = math.nan if spec["missing"] is None else float(spec["missing"])
            out.append(NumericInput(name, missing, bool(spec["float32"])))
            continue
        codes, categories = values.get(name), tuple(spec["categories"])
        if codes is None or len(codes) != len(categories) + 2:
            raise _fail(source, f"field codes/weights of {name!r} do not match its categories")
        *known, unknown, missing = (float(c) for c in codes)
        out.append(CategoricalInput(name, categories, tuple(known), unknown, missing))
    return out


def _trees(header: dict[str, Any], a: dict[str, np.ndarray], source: str) -> BinnedTrees:
    flags, n_inputs = a["flags"], len(header["inputs"])
    n = len(flags)
    interior, categorical, missing_left = flags & 1 == 1, flags & 2 == 2, flags & 4 == 4
    per_node: dict[str, np.ndarray] = {}
    for name in ("feature", "split", "right_offset"):
        if a[name].shape != (int(interior.sum()),):
            raise _fail(source, f"array {name!r} has shape {a[name].shape}, not one per split")
        per_node[name] = np.zeros(n, np.int64)
        per_node[name][interior] = a[name]
    roots = a["roots"].astype(np.int64)
    ends = np.append(roots[1:], n)
    if len(roots) == 0 or roots[0] != 0 or np.any(ends <= roots):
        raise _fail(source, "array 'roots' is not increasing from 0 within the nodes")
    node = np.arange(n)
    tree_of = np.searchsorted(roots, node, side="right") - 1
    right = node + per_node["right_offset"]
    # Children after their node, inside its tree: every walk ends at a leaf.
    if np.any(interior & ((right <= node + 1) | (right >= ends[tree_of]))):
        raise _fail(source, "array 'right_offset' points outside its tree")
    feature = per_node["feature"]
    sizes = a["table_sizes"].astype(np.int64)
    if len(sizes) != n_inputs or np.any(feature[interior] >= n_inputs):
        raise _fail(source, "arrays 'feature'/'table_sizes' do not match the header's inputs")
    if int(sizes.clip(0).sum()) != len(a["thresholds"]):
        raise _fail(source, "array 'thresholds' does not match 'table_sizes'")
    edges = np.concatenate([[0], np.cumsum(sizes.clip(0))])
    tables = tuple(
        None if sizes[f] < 0 else np.array(a["thresholds"][edges[f] : edges[f + 1]], np.float64)
        for f in range(n_inputs)
    )
    on_table = sizes[feature] >= 0
    if np.any(interior & (categorical == on_table)):
        raise _fail(source, "array 'flags' disagrees with 'table_sizes' on a categorical split")
    split = per_node["split"]
    bitsets = a["bitsets"]
    if bitsets.shape[1:] != (32,) or np.any(split[interior & categorical] >= len(bitsets)):
        raise _fail(source, "array 'split' names a missing category bitset")
    members = [
        frozenset(int(c) for c in np.flatnonzero(np.unpackbits(b, bitorder="little")))
        for b in bitsets
    ]
    leaf_bits, scales = int(header["leaf_bits"]), np.array(a["scales"], np.float64)
    leaves = a["leaves"].astype(np.float64)
    if leaves.shape != (n - int(interior.sum()),) or scales.shape != roots.shape:
        raise _fail(source, "arrays 'leaves'/'scales' do not match the nodes and trees")
    q, value = np.zeros(n), np.zeros(n)
    if leaf_bits == 64:
        value[~interior] = leaves
    else:
        # The same product bin_trees computes, so values match it bit for bit.
        q[~interior] = leaves
        value[~interior] = q[~interior] * scales[tree_of[~interior]]
    trees = Trees(
        feature=np.where(interior, feature, LEAF).astype(np.int32),
        threshold=np.where(interior & ~categorical, split, 0).astype(np.float64),
        categorical=interior & categorical,
        cat_sets=tuple(
            members[s] if c else frozenset()
            for s, c in zip(split, interior & categorical, strict=True)
        ),
        missing_left=missing_left,
        left=np.where(interior, node + 1, LEAF).astype(np.int32),
        right=np.where(interior, right, LEAF).astype(np.int32),
        value=value,
        roots=roots.astype(np.int32),
        aggregate=header["aggregate"],
        base=float(header["base"]),
    )
    return BinnedTrees(tables, trees, int(header["bin_bits"]), leaf_bits, q, scales)


def _linear(header: dict[str, Any], a: dict[str, np.ndarray], source: str) -> ExportModel:
    scale = float(header["coef_scale"])
    # A category's value is its one-hot weight: an integer times the same scale as coef_.
    weights = {k: [w * scale for w in v] for k, v in header["category_weights"].items()}
    inputs = _inputs(header, source, weights)
    terms = np.asarray(a["numeric_terms"], np.float64)
    numeric = [j for j, s in enumerate(inputs) if isinstance(s, NumericInput)]
    if terms.shape != (len(numeric), 3):
        raise _fail(source, f"array 'numeric_terms' has shape {terms.shape}, not {len(numeric)}x3")
    slope, offset, missing_term = np.ones(len(inputs)), np.zeros(len(inputs)), np.zeros(len(inputs))
    slope[numeric], offset[numeric], missing_term[numeric] = terms.T
    for j, spec in enumerate(inputs):
        if isinstance(spec, CategoricalInput):
            missing_term[j] = spec.missing
    linear = Linear(slope, offset, missing_term, float(header["intercept"]))
    return ExportModel(header["model_type"], tuple(inputs), linear)


_REQUIRED = {
    "trees": (
        *("feature", "split", "flags", "right_offset", "roots", "thresholds"),
        *("table_sizes", "bitsets", "scales", "leaves"),
        *("inputs", "codes", "aggregate", "base", "bin_bits", "leaf_bits", "model_type"),
    ),
    "linear": (
        *("coef", "numeric_terms", "inputs", "intercept", "bits", "coef_scale"),
        *("category_weights", "model_type"),
    ),
}


def load_quantized(data: bytes, source: str = "quantized model") -> QuantizedModel:
    """Read a `model.qN.bin` (MLGQ2); `source` names it in errors. Bad input: ArtifactError."""
    header, arrays = _unpack(data, source)
    kind = header.get("format")
    if kind not in _REQUIRED:
        raise _fail(source, f"field 'format' is {kind!r}, expected 'trees' or 'linear'")
    missing = [name for name in _REQUIRED[kind] if name not in arrays and name not in header]
    if missing:
        raise _fail(source, f"no field {missing[0]!r}")
    try:
        if kind == "linear":
            model = _linear(header, arrays, source)
            return QuantizedModel(source, int(header["bits"]), model, None)
        binned = _trees(header, arrays, source)
        inputs = _inputs(header, source, header["codes"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise _fail(source, f"malformed header ({type(exc).__name__}: {exc})") from None
    model = ExportModel(header["model_type"], tuple(inputs), binned.trees)
    return QuantizedModel(source, binned.leaf_bits, model, binned)


def read_quantized(path: Path | str) -> QuantizedModel:
    """`load_quantized` of a file on disk."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the quantized model ({exc.strerror})") from None
    return load_quantized(data, str(path))
