"""Building the export artifacts of a fitted pipeline, each checked before it is kept.

The float exports (ONNX and the binned form the C/JS scorers bake in) must match
`pipeline.predict_proba` within `export.parity_tolerance` with no decision flipped; the
quantized model must pass `export.quantize`, and the quantized file, read back, must score every
test row exactly as the in-memory quantized model the ledger measures. A failed check raises
ExportError with one line; nothing is written here (the `export` stage writes what `build` keeps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlgitops.config import ExportConfig, ThresholdConfig
from mlgitops.errors import ArtifactError, ExportError
from mlgitops.export import onnx_graph, prune, quantize, runtimes
from mlgitops.export.extract import from_pipeline
from mlgitops.export.ir import ExportModel, Trees, encode, score_encoded
from mlgitops.export.ledger import ErrorLedger, Parity, Pruning, Size, ledger, parity, size_of
from mlgitops.export.tables import columns_of
from mlgitops.model_base import FrozenModel


class ExportMetrics(FrozenModel):
    model_type: str
    n_test: int
    threshold: float
    n_trees: int | None
    onnx: Parity | None
    binned_float: Parity | None  # what scorer.h and scorer.mjs compute
    onnx_size: Size | None
    quantized: ErrorLedger | None
    pruned: Pruning | None
    files: dict[str, int]  # artifact name -> bytes


def check_parity(name: str, result: Parity, tolerance: float, threshold: float) -> None:
    if result.max_abs_delta_score > tolerance or result.decisions_flipped:
        raise ExportError(
            f"export: {name} parity failed: max |Δ score| {result.max_abs_delta_score:.3g} "
            f"(limit {tolerance:g}), {result.decisions_flipped} decisions flipped at "
            f"threshold {threshold:.6g}"
        )


def read_back(blob: bytes, name: str, columns: list[list[object]], scores: np.ndarray) -> None:
    """The written bytes must score every test row exactly as the in-memory quantized model."""
    try:
        again = quantize.load_quantized(blob, name).score(columns)
    except ArtifactError as exc:
        raise ExportError(f"export: {name} does not read back: {exc}") from None
    differ = int(np.sum(again != scores))
    if differ:
        raise ExportError(
            f"export: {name} read back scores {differ} of {len(scores)} test rows differently "
            f"from the in-memory quantized model (max |Δ| {np.max(np.abs(again - scores)):.3g})"
        )


def quantized_within_gate(
    export: ExportConfig,
    costs: ThresholdConfig,
    pipeline,
    model: ExportModel,
    columns,
    x,
    labels,
    reference,
    threshold,
    float_blob,
) -> tuple[ErrorLedger, bytes]:
    """`x` is `columns` encoded for `model` (the float one): trees score it as it is."""
    gate = export.quantize
    failures = []
    for bits in (8, 16):
        if isinstance(model.model, Trees):
            binned = quantize.bin_trees(model, bits)
            scores = quantize.score_binned(model, binned, x)
            blob = quantize.pack_trees(model, binned)
        else:
            qmodel, q, scale = quantize.quantize_linear(pipeline, bits)
            # Its own inputs: a category's value is its (quantized) one-hot weight.
            scores = score_encoded(qmodel, encode(qmodel.inputs, columns))
            blob = quantize.pack_linear(qmodel, q, scale, bits)
        read_back(blob, f"model.q{bits}.bin", columns, scores)
        entry = ledger(labels, reference, scores, threshold, costs, bits, blob, float_blob)
        if (
            entry.flipped_fraction <= gate.max_flipped_fraction
            and abs(entry.delta_roc_auc) <= gate.max_abs_delta_roc_auc
        ):
            return entry, blob
        failures.append(
            f"int{bits}: {entry.flipped_fraction:.4%} flipped, Δ AUC {entry.delta_roc_auc:+.2g}"
        )
    raise ExportError(
        f"export: quantized model fails export.quantize ({'; '.join(failures)}); limits "
        f"{gate.max_flipped_fraction:.4%} flipped, |Δ AUC| {gate.max_abs_delta_roc_auc:g}"
    )


@dataclass(frozen=True)
class Exported:
    """The artifacts that passed their checks (file name -> bytes) and their record."""

    files: dict[str, bytes]
    metrics: ExportMetrics


def build(
    pipeline,
    features: pd.DataFrame,
    labels: np.ndarray,
    threshold: float,
    export: ExportConfig,
    costs: ThresholdConfig,
) -> Exported:
    """Every artifact of `export.artifacts` for `pipeline`, checked on the test split's
    `features` and `labels` at the released `threshold`."""
    reference = np.asarray(pipeline.predict_proba(features)[:, 1])
    model = from_pipeline(pipeline)
    columns = columns_of(features, model.names)
    x = encode(model.inputs, columns)
    wanted, tol = set(export.artifacts), export.parity_tolerance
    files: dict[str, bytes] = {}

    proto = onnx_graph.to_onnx(model, threshold).SerializeToString()
    onnx_parity = None
    if "onnx" in wanted:
        scores, _ = onnx_graph.run(onnx_graph.session(proto), model, columns)
        onnx_parity = parity(reference, scores, threshold)
        check_parity("ONNX", onnx_parity, tol, threshold)
        files["model.onnx"] = proto

    trees = model.model if isinstance(model.model, Trees) else None
    binned = quantize.bin_trees(model, 64) if trees is not None else None
    binned_parity = None
    if {"c", "js"} & wanted:
        if binned is not None:
            scores = quantize.score_binned(model, binned, x)
        else:
            scores = score_encoded(model, x)
        binned_parity = parity(reference, scores, threshold)
        check_parity("binned float (C/JS)", binned_parity, tol, threshold)
    if "c" in wanted:
        files["scorer.h"] = runtimes.c_header(model, binned, threshold).encode()
        files["main.c"] = runtimes.C_MAIN.encode()
        try:
            files["rows.csv"] = runtimes.example_rows(model, columns, reference).encode()
        except ValueError as error:
            raise ExportError(f"export: rows.csv for the C scorer: {error}") from None
    if "js" in wanted:
        files["scorer.mjs"] = runtimes.js_module(model, binned, threshold).encode()

    quantized = None
    if "quantized" in wanted:
        quantized, blob = quantized_within_gate(
            export, costs, pipeline, model, columns, x, labels, reference, threshold, proto
        )
        files[f"model.q{quantized.bits}.bin"] = blob

    pruned = None
    if "pruned" in wanted and trees is not None:
        eps = export.prune_epsilon_cost_per_1000
        leaves = trees.leaf_values(x)
        kept, kept_scores = prune.shortest_prefix(trees, leaves, labels, threshold, costs, eps)
        small = ExportModel(model.model_type, model.inputs, trees.prefix(kept))
        pruned_proto = onnx_graph.to_onnx(small, threshold).SerializeToString()
        files["model.pruned.onnx"] = pruned_proto
        from sklearn.metrics import roc_auc_score

        from mlgitops.export.ledger import expected_cost_per_1000

        pruned = Pruning(
            trees_total=trees.n_trees,
            trees_kept=kept,
            nodes_kept=len(small.model.feature),  # type: ignore[union-attr]
            epsilon_cost_per_1000=eps,
            expected_cost_per_1000_full=round(
                expected_cost_per_1000(labels, reference, threshold, costs), 6
            ),
            expected_cost_per_1000_kept=round(
                expected_cost_per_1000(labels, kept_scores, threshold, costs), 6
            ),
            roc_auc_full=round(float(roc_auc_score(labels, reference)), 6),
            roc_auc_kept=round(float(roc_auc_score(labels, kept_scores)), 6),
            size=size_of(pruned_proto),
        )

    metrics = ExportMetrics(
        model_type=model.model_type,
        n_test=len(labels),
        threshold=threshold,
        n_trees=trees.n_trees if trees is not None else None,
        onnx=onnx_parity,
        binned_float=binned_parity,
        onnx_size=size_of(proto) if "onnx" in wanted else None,
        quantized=quantized,
        pruned=pruned,
        files={name: len(blob) for name, blob in sorted(files.items())},
    )
    return Exported(files, metrics)
