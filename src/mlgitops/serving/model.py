"""The model as the service runs it: loaded once, compiled for speed, checked before it serves.

`pipeline.predict_proba` on a one-row DataFrame costs milliseconds (pandas, ColumnTransformer and a
Python loop over hundreds of trees). The service gets the same scores much faster from the one
compiler of the fitted pipeline, the export package's:

1. `export.extract` reads the fitted pipeline into its IR: per-feature encodings (imputed values,
   category tables with their unknown and missing values) and the trees or the linear model.
2. `ir.Encoder` maps the validated columns straight into the encoded matrix (no pandas), and
   `onnx_graph.scoring_graph` (one float64 TreeEnsemble, or the linear terms, then the sigmoid)
   runs on it in ONNX Runtime. HistGradientBoosting, random forests and logistic regressions all
   take this path.

The compiled scorer is only used if it reproduces `pipeline.predict_proba` on a probe batch to
1e-9; else (a pipeline the IR cannot read, a graph that cannot run) the service scores with the
pipeline itself. The self-check at load time compares the chosen path with the pipeline once more
(tolerance 1e-6) and the service does not become ready unless it passes.

With `package.model_format: onnx` the bento holds the export stage's `model.onnx` (the whole
pipeline as one graph) and no pipeline: `build_exported_model` runs that graph, and its
self-check compares it with the pipeline's scores on probe records, computed at packaging time
(`reference_scores`) and shipped beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlgitops.errors import ArtifactError, ServingError
from mlgitops.export.ir import MISSING_CATEGORY, UNSEEN, Encoder
from mlgitops.export.ort import session
from mlgitops.io import file_sha256
from mlgitops.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlgitops.serving.features import Batch, FeatureSpace, validate_records

FAST_PATH_TOLERANCE = 1e-9
SELF_CHECK_TOLERANCE = 1e-6
SELF_CHECK_ROWS = 256
COMPILED_RUNTIME = "onnx"


def frame_from_columns(space: FeatureSpace, columns: list[list[Any]]) -> Any:
    """The DataFrame the pipeline was trained on: float64 numerics, object categories, NaN gaps."""
    import pandas as pd

    data: dict[str, Any] = {}
    for feature, values in zip(space.features, columns, strict=True):
        if feature.kind == "numeric":
            data[feature.name] = np.asarray(values, dtype=np.float64)
        else:
            data[feature.name] = np.array(
                [np.nan if v is None else v for v in values], dtype=object
            )
    return pd.DataFrame(data, columns=space.names)


@dataclass(frozen=True)
class Scorer:
    """Validated columns -> positive-class scores."""

    runtime: str  # "onnx", "pipeline" or "onnx-export" (the exported model.onnx)
    score: Callable[[list[list[Any]]], np.ndarray]


def _pipeline_scorer(pipeline: Any, space: FeatureSpace) -> Scorer:
    def score(columns: list[list[Any]]) -> np.ndarray:
        return np.asarray(pipeline.predict_proba(frame_from_columns(space, columns))[:, 1])

    return Scorer("pipeline", score)


def compiled_scorer(pipeline: Any, space: FeatureSpace) -> Scorer | None:
    """The pipeline through export's IR and scoring graph, or None if the IR cannot read it."""
    # Here, not at the top: a pod serving model.onnx never imports pandas or onnx.
    from mlgitops.export import onnx_graph
    from mlgitops.export.extract import from_pipeline

    try:
        model = from_pipeline(pipeline)
    except ArtifactError:
        return None
    names = space.names
    if any(name not in names for name in model.names):
        return None
    encode = Encoder(model.inputs, [names.index(name) for name in model.names])
    run = session(onnx_graph.scoring_graph(model)).run

    def score(columns: list[list[Any]]) -> np.ndarray:
        return run(None, {onnx_graph.ENCODED: encode(columns)})[0][:, 0]

    return Scorer(COMPILED_RUNTIME, score)


def candidate_scorers(pipeline: Any, space: FeatureSpace) -> list[Scorer]:
    """Fastest first; each still has to pass the comparison with the pipeline."""
    compiled = compiled_scorer(pipeline, space)
    return [*([compiled] if compiled else []), _pipeline_scorer(pipeline, space)]


def probe_records(profile: ReferenceProfile, rows: int, seed: int = 0) -> list[dict[str, Any]]:
    """Plausible and edge-case records from the profile: bin edges, extremes, unseen, missing."""
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = []
    for _ in range(rows):
        record: dict[str, Any] = {}
        for name, spec in profile.features.items():
            if spec.missing_rate > 0 and rng.random() < 0.1:
                record[name] = None
            elif isinstance(spec, NumericProfile):
                points = [v for v in (spec.min, spec.max, spec.mean) if v is not None]
                points += spec.bin_edges
                low, high = (spec.min or 0.0), (spec.max or 1.0)
                if points and rng.random() < 0.3:
                    record[name] = float(points[rng.integers(len(points))])
                else:
                    record[name] = float(rng.uniform(low - 1.0, high + 1.0))
            else:
                assert isinstance(spec, CategoricalProfile)
                cats = list(spec.frequencies) or ["a"]
                if rng.random() < 0.05:
                    record[name] = f"unseen-{rng.integers(1000)}"
                else:
                    record[name] = cats[rng.integers(len(cats))]
        records.append(record)
    return records


def _max_difference(scorer: Scorer, reference: np.ndarray, columns: list[list[Any]]) -> float:
    scores = scorer.score(columns)
    if scores.shape != reference.shape or not np.isfinite(scores).all():
        return math.inf
    return float(np.max(np.abs(scores - reference)))


@dataclass(frozen=True)
class LoadedModel:
    space: FeatureSpace
    profile: ReferenceProfile
    threshold: float
    scorer: Scorer
    # Largest difference from pipeline.predict_proba seen in the self-check.
    self_check_difference: float

    def scores(self, batch: Batch) -> np.ndarray:
        return self.scorer.score(batch.columns)


def verify_hash(path: Path, expected: str) -> None:
    """Refuse a model file whose bytes are not the ones the release recorded ("sha256:<hex>")."""
    algorithm, _, digest = expected.partition(":")
    if algorithm != "sha256" or not digest:
        raise ArtifactError(f"unsupported model hash {expected!r}")
    actual = file_sha256(path)
    if actual != digest:
        raise ArtifactError(f"{path}: sha256 {actual} does not match the release's {digest}")


def build_model(
    pipeline: Any, profile: ReferenceProfile, threshold: float, probe_rows: int = SELF_CHECK_ROWS
) -> LoadedModel:
    """Choose the fastest scorer that matches the pipeline, then self-check it."""
    if not 0.0 <= threshold <= 1.0:
        raise ServingError(f"threshold {threshold} is not a probability")
    space = FeatureSpace.from_profile(profile)
    records = probe_records(profile, probe_rows)
    batch = validate_records(records, space)
    try:
        reference = np.asarray(
            pipeline.predict_proba(frame_from_columns(space, batch.columns))[:, 1]
        )
    except Exception as error:
        raise ServingError(f"self-check: the model cannot predict: {error}") from error
    if reference.shape != (len(records),) or not np.isfinite(reference).all():
        raise ServingError("self-check: the model returned non-finite or misshapen scores")
    try:
        candidates = candidate_scorers(pipeline, space)
    except Exception:  # a fast path that cannot be built is just not used
        candidates = [_pipeline_scorer(pipeline, space)]
    for scorer in candidates:
        try:
            difference = _max_difference(scorer, reference, batch.columns)
        except Exception:  # a fast path that cannot run is just not used
            continue
        tolerance = FAST_PATH_TOLERANCE if scorer.runtime != "pipeline" else 0.0
        if difference <= tolerance:
            return LoadedModel(space, profile, threshold, scorer, difference)
    raise ServingError("self-check: no scorer reproduces the pipeline's scores")


def self_check(model: LoadedModel, pipeline: Any) -> float:
    """A fresh probe batch through the chosen scorer and the pipeline; raise if they differ."""
    records = probe_records(model.profile, 64, seed=1)
    batch = validate_records(records, model.space)
    reference = np.asarray(
        pipeline.predict_proba(frame_from_columns(model.space, batch.columns))[:, 1]
    )
    difference = _max_difference(model.scorer, reference, batch.columns)
    if difference > SELF_CHECK_TOLERANCE:
        raise ServingError(f"self-check: scores differ from the pipeline by {difference:.3g}")
    return difference


EXPORTED_RUNTIME = "onnx-export"
# What a client's "" category becomes: the exported graph reads "" as missing, the pipeline sees
# an unknown category; any string the encoders never saw gets the pipeline's answer.
_EMPTY_CATEGORY = UNSEEN


def exported_scorer(model_bytes: bytes, space: FeatureSpace) -> Scorer:
    """The export stage's graph (one [N, 1] input per feature: double, NaN = missing, or
    string, "" = missing; output `score`) over validated columns."""
    graph = session(model_bytes)
    found = {i.name: i.type for i in graph.get_inputs()}
    wanted = {
        f.name: "tensor(double)" if f.kind == "numeric" else "tensor(string)"
        for f in space.features
    }
    if found != wanted:
        raise ArtifactError(f"the ONNX model's inputs {found} are not the profile's {wanted}")
    if "score" not in {o.name for o in graph.get_outputs()}:
        raise ArtifactError("the ONNX model has no `score` output")
    layout = [(f.name, f.kind == "numeric") for f in space.features]
    run = graph.run

    def score(columns: list[list[Any]]) -> np.ndarray:
        feeds = {}
        for (name, numeric), column in zip(layout, columns, strict=True):
            if numeric:
                feeds[name] = np.array(column, dtype=np.float64).reshape(-1, 1)
            else:
                values = [MISSING_CATEGORY if v is None else v or _EMPTY_CATEGORY for v in column]
                feeds[name] = np.array(values, dtype=object).reshape(-1, 1)
        return run(["score"], feeds)[0][:, 0]

    return Scorer(EXPORTED_RUNTIME, score)


def reference_scores(
    pipeline: Any, profile: ReferenceProfile, rows: int = SELF_CHECK_ROWS, seed: int = 1
) -> dict[str, Any]:
    """Probe records and the pipeline's scores on them: what a model served without its
    pipeline is self-checked against (written at packaging time)."""
    space = FeatureSpace.from_profile(profile)
    records = probe_records(profile, rows, seed)
    # A client's "" category, which the graph must not read as its own missing marker.
    records.append({**records[0], **{f.name: "" for f in space.features if f.kind != "numeric"}})
    batch = validate_records(records, space)
    scores = pipeline.predict_proba(frame_from_columns(space, batch.columns))[:, 1]
    return {"records": records, "scores": [float(s) for s in scores]}


def build_exported_model(
    model_bytes: bytes, profile: ReferenceProfile, threshold: float, reference: Any
) -> LoadedModel:
    """The exported graph, self-checked against the pipeline's recorded scores (1e-6)."""
    if not 0.0 <= threshold <= 1.0:
        raise ServingError(f"threshold {threshold} is not a probability")
    if not (
        isinstance(reference, dict)
        and isinstance(reference.get("records"), list)
        and isinstance(reference.get("scores"), list)
        and len(reference["records"]) == len(reference["scores"]) > 0
    ):
        raise ArtifactError("the reference scores are not {records: [...], scores: [...]}")
    space = FeatureSpace.from_profile(profile)
    scorer = exported_scorer(model_bytes, space)
    batch = validate_records(reference["records"], space)
    expected = np.asarray(reference["scores"], dtype=np.float64)
    difference = _max_difference(scorer, expected, batch.columns)
    if not difference <= SELF_CHECK_TOLERANCE:
        raise ServingError(
            f"self-check: the exported model differs from the pipeline by {difference:.3g}"
        )
    return LoadedModel(space, profile, threshold, scorer, difference)
