"""The quantized model: tree splits as bin indices, leaves (or LR weights) as int8/int16.

Splits are lossless: per feature, the sorted thresholds any split uses form a table, a value's
bin is the number of thresholds below it, and `x <= table[k]` iff `bin(x) <= k` (HGB trains on
such bins). Categorical codes are their own bins. Only leaf values are rounded: one scale per
tree, error per leaf at most scale/2. Logistic regression keeps its preprocessing in float64
and rounds `coef_` to one int8 grid (per-tensor scale), the only weights it has.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlgitops.errors import ArtifactError
from mlgitops.export.extract import from_pipeline
from mlgitops.export.ir import LEAF, CategoricalInput, ExportModel, NumericInput, Trees

MAGIC = b"MLGQ1\n"


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


def pack_trees(model: ExportModel, binned: BinnedTrees) -> bytes:
    trees = binned.trees
    interior = trees.feature != LEAF
    cats = [sorted(s) for s in trees.cat_sets]
    split = np.where(interior, binned.trees.threshold, 0).astype(np.int64)
    bitsets: list[np.ndarray] = []
    for node in np.flatnonzero(trees.categorical):
        bits = np.zeros(256, dtype=bool)
        bits[cats[node]] = True
        split[node] = len(bitsets)
        bitsets.append(np.packbits(bits, bitorder="little"))
    flags = interior.astype(np.uint8) | trees.categorical << 1 | trees.missing_left << 2
    children = np.where(interior, trees.left, 0), np.where(interior, trees.right, 0)
    arrays = {
        "feature": np.where(interior, trees.feature, 0).astype(
            _int_dtype(trees.feature.clip(0), False)
        ),
        "split": split.astype(_int_dtype(split, False)),
        "flags": flags.astype(np.uint8),
        "left": children[0].astype(_int_dtype(children[0], False)),
        "right": children[1].astype(_int_dtype(children[1], False)),
        "roots": trees.roots.astype(_int_dtype(trees.roots, False)),
        "thresholds": np.concatenate([t for t in binned.tables if t is not None] or [np.zeros(0)]),
        "table_sizes": np.array([-1 if t is None else len(t) for t in binned.tables], "<i4"),
        "bitsets": np.array(bitsets, np.uint8).reshape(-1, 32),
        "scales": binned.scales.astype("<f8"),
    }
    q = binned.q[~interior]
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


def pack_linear(model: ExportModel, q: np.ndarray, scale: float) -> bytes:
    linear = model.model
    numeric = [j for j, s in enumerate(model.inputs) if isinstance(s, NumericInput)]
    header = {
        "format": "linear",
        "model_type": model.model_type,
        "inputs": _header_inputs(model),
        "intercept": linear.intercept,  # type: ignore[union-attr]
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
