"""The model as the service runs it: loaded once, compiled for speed, checked before it serves.

`pipeline.predict_proba` on a one-row DataFrame costs milliseconds (pandas, ColumnTransformer and a
Python loop over hundreds of trees). The service gets the same scores much faster in two steps:

1. An encoder plan, learned by probing the fitted preprocessing one feature at a time, maps the
   validated columns straight into the estimator's input matrix (numpy, no pandas).
2. A HistGradientBoostingClassifier is rebuilt as one float64 ONNX model (`serving.onnx`) and run
   by ONNX Runtime.

Each step is only used if it reproduces `pipeline.predict_proba` on a probe batch to 1e-9; else
the service falls back to the estimator, then to the pipeline itself. The self-check at load time
compares the chosen path with the pipeline once more (tolerance 1e-6) and the service does not
become ready unless it passes.

With `package.model_format: onnx` the bento holds the export stage's `model.onnx` (the whole
pipeline as one graph) and no pipeline: `build_exported_model` runs that graph, and its
self-check compares it with the pipeline's scores on probe records, computed at packaging time
(`reference_scores`) and shipped beside it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlgitops.errors import ArtifactError, ServingError
from mlgitops.io import file_sha256
from mlgitops.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlgitops.serving.features import Batch, FeatureSpace, validate_records
from mlgitops.serving.onnx import INPUT, compile_model, inference_session

# A category no client can have sent: what the encoders do with it is what they do with any
# category they did not see in training.
UNSEEN_PROBE = "\x00mlgitops-unseen\x00"
FAST_PATH_TOLERANCE = 1e-9
SELF_CHECK_TOLERANCE = 1e-6
SELF_CHECK_ROWS = 256
# Batches up to this size are encoded row by row in Python, larger ones column by column in numpy.
SMALL_BATCH = 16


@dataclass(frozen=True)
class NumericColumn:
    feature: int
    # What a missing value becomes (NaN for passthrough, the median for an imputer, ...).
    missing: float


@dataclass(frozen=True)
class CategoricalColumn:
    feature: int
    table: dict[str, float]
    unseen: float
    missing: float


@dataclass(frozen=True)
class ConstantColumn:
    value: float


Column = NumericColumn | CategoricalColumn | ConstantColumn


@dataclass(frozen=True)
class EncoderPlan:
    columns: tuple[Column, ...]

    def encode(self, columns: list[list[Any]]) -> np.ndarray:
        n = len(columns[0]) if columns else 0
        if n <= SMALL_BATCH:
            return self._encode_rows(columns, n)
        out = np.empty((n, len(self.columns)), dtype=np.float64)
        for j, column in enumerate(self.columns):
            if isinstance(column, NumericColumn):
                values = np.fromiter(columns[column.feature], dtype=np.float64, count=n)
                if not math.isnan(column.missing):
                    values[np.isnan(values)] = column.missing
                out[:, j] = values
            elif isinstance(column, CategoricalColumn):
                table, unseen, missing = column.table, column.unseen, column.missing
                out[:, j] = [
                    missing if v is None else table.get(v, unseen) for v in columns[column.feature]
                ]
            else:
                out[:, j] = column.value
        return out

    def _encode_rows(self, columns: list[list[Any]], n: int) -> np.ndarray:
        # Per column numpy calls cost more than the values for a few rows: plain Python, one
        # array at the end (the same float64 values as the column path).
        rows: list[list[float]] = [[] for _ in range(n)]
        for column in self.columns:
            if isinstance(column, NumericColumn):
                values, fill = columns[column.feature], column.missing
                for row, v in zip(rows, values, strict=True):
                    row.append(fill if v != v else v)  # v != v: NaN, the missing value
            elif isinstance(column, CategoricalColumn):
                table, unseen, missing = column.table, column.unseen, column.missing
                for row, v in zip(rows, columns[column.feature], strict=True):
                    row.append(missing if v is None else table.get(v, unseen))
            else:
                for row in rows:
                    row.append(column.value)
        return np.array(rows, dtype=np.float64).reshape(n, len(self.columns))


Transform = Callable[[Any], np.ndarray]


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


def _dense(matrix: Any) -> np.ndarray | None:
    if hasattr(matrix, "toarray"):  # sparse output (one-hot): not for the fast path
        return None
    array = np.asarray(matrix, dtype=np.float64)
    return array if array.ndim == 2 else None


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def encoder_categories(pipeline: Any) -> dict[str, set[str]]:
    """Categories the fitted encoders know, by column name (the profile may truncate its list)."""
    found: dict[str, set[str]] = {}
    preprocess = pipeline[0] if len(pipeline) > 1 else None
    for _, transformer, columns in getattr(preprocess, "transformers_", []):
        steps = getattr(transformer, "steps", None)
        encoder = steps[-1][1] if steps else transformer
        categories = getattr(encoder, "categories_", None)
        if categories is None or not isinstance(columns, list | tuple):
            continue
        for name, values in zip(columns, categories, strict=False):
            found.setdefault(str(name), set()).update(v for v in values if isinstance(v, str))
    return found


def _candidates(space: FeatureSpace, extra: dict[str, set[str]]) -> list[list[str]]:
    return [sorted(f.known | extra.get(f.name, set())) for f in space.features]


def _base_row(profile: ReferenceProfile, candidates: list[list[str]]) -> list[Any]:
    row: list[Any] = []
    for (_, spec), cats in zip(profile.features.items(), candidates, strict=True):
        if isinstance(spec, NumericProfile):
            row.append(float(spec.mean) if spec.mean is not None else 0.0)
        else:
            row.append(next(iter(spec.frequencies), cats[0] if cats else "a"))
    return row


def compile_encoder(
    transform: Transform, space: FeatureSpace, profile: ReferenceProfile, extra: dict[str, set[str]]
) -> EncoderPlan | None:
    """Learn how each output column of `transform` depends on one input feature, or give up.

    Varies one feature at a time around a base row: a numeric feature must come out unchanged
    (bar what NaN becomes), a categorical one through a lookup table; a column that depends on
    two features (or anything else) means no plan.
    """
    candidates = _candidates(space, extra)
    base = _base_row(profile, candidates)

    def run(rows: list[list[Any]]) -> np.ndarray | None:
        columns = [list(col) for col in zip(*rows, strict=True)]
        return _dense(transform(frame_from_columns(space, columns)))

    reference = run([base])
    if reference is None:
        return None
    plan: list[Column | None] = [None] * reference.shape[1]
    for index, feature in enumerate(space.features):
        if feature.kind == "numeric":
            probes: list[Any] = [base[index], -3.25, 0.0, 1.5, 12345.678, 1e-3, 7.0, math.nan]
        else:
            probes = [*candidates[index], UNSEEN_PROBE, None]
        rows = [[*base[:index], value, *base[index + 1 :]] for value in probes]
        out = run(rows)
        if out is None or out.shape[1] != len(plan):
            return None
        varying = np.flatnonzero(~_same(out, out[:1]).all(axis=0))
        for j in varying:
            if plan[j] is not None:
                return None
            if feature.kind == "numeric":
                values = np.array(probes[:-1], dtype=np.float64)
                if not _same(out[:-1, j], values).all():
                    return None
                plan[j] = NumericColumn(index, float(out[-1, j]))
            else:
                cats = candidates[index]
                table = {cat: float(out[k, j]) for k, cat in enumerate(cats)}
                plan[j] = CategoricalColumn(index, table, float(out[-2, j]), float(out[-1, j]))
    return EncoderPlan(
        tuple(
            c if c is not None else ConstantColumn(float(reference[0, j]))
            for j, c in enumerate(plan)
        )
    )


@dataclass(frozen=True)
class Scorer:
    """Validated columns -> positive-class scores."""

    runtime: str  # "onnx", "estimator", "pipeline" or "onnx-export" (the exported model.onnx)
    score: Callable[[list[list[Any]]], np.ndarray]


def _pipeline_scorer(pipeline: Any, space: FeatureSpace) -> Scorer:
    def score(columns: list[list[Any]]) -> np.ndarray:
        return np.asarray(pipeline.predict_proba(frame_from_columns(space, columns))[:, 1])

    return Scorer("pipeline", score)


def candidate_scorers(
    pipeline: Any, space: FeatureSpace, profile: ReferenceProfile
) -> list[Scorer]:
    """Fastest first; each still has to pass the comparison with the pipeline."""
    scorers: list[Scorer] = []
    if len(pipeline) < 2:
        return [_pipeline_scorer(pipeline, space)]
    preprocess, estimator = pipeline[:-1], pipeline[-1]
    extra = encoder_categories(pipeline)
    inner = getattr(estimator, "_preprocessor", None)
    onnx_model = compile_model(estimator)
    if onnx_model is not None:

        def full(frame: Any) -> np.ndarray:
            matrix = preprocess.transform(frame)
            return inner.transform(matrix) if inner is not None else matrix

        tree_plan = compile_encoder(full, space, profile, extra)
        if tree_plan is not None:
            session = inference_session(onnx_model)

            def onnx_score(columns: list[list[Any]]) -> np.ndarray:
                return session.run(None, {INPUT: tree_plan.encode(columns)})[0][:, 0]

            scorers.append(Scorer("onnx", onnx_score))
    plan = compile_encoder(preprocess.transform, space, profile, extra)
    if plan is not None:
        # Fitted on a DataFrame, the estimator warns about feature names on a matrix; harmless.
        def estimator_score(columns: list[list[Any]], plan: EncoderPlan = plan) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return np.asarray(estimator.predict_proba(plan.encode(columns))[:, 1])

        scorers.append(Scorer("estimator", estimator_score))
    scorers.append(_pipeline_scorer(pipeline, space))
    return scorers


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
    for scorer in candidate_scorers(pipeline, space, profile):
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
_EMPTY_CATEGORY = UNSEEN_PROBE


def exported_scorer(model_bytes: bytes, space: FeatureSpace) -> Scorer:
    """The export stage's graph (one [N, 1] input per feature: double, NaN = missing, or
    string, "" = missing; output `score`) over validated columns."""
    session = inference_session(model_bytes)
    found = {i.name: i.type for i in session.get_inputs()}
    wanted = {
        f.name: "tensor(double)" if f.kind == "numeric" else "tensor(string)"
        for f in space.features
    }
    if found != wanted:
        raise ArtifactError(f"the ONNX model's inputs {found} are not the profile's {wanted}")
    if "score" not in {o.name for o in session.get_outputs()}:
        raise ArtifactError("the ONNX model has no `score` output")
    layout = [(f.name, f.kind == "numeric") for f in space.features]
    run = session.run

    def score(columns: list[list[Any]]) -> np.ndarray:
        feeds = {}
        for (name, numeric), column in zip(layout, columns, strict=True):
            if numeric:
                feeds[name] = np.array(column, dtype=np.float64).reshape(-1, 1)
            else:
                values = ["" if v is None else v or _EMPTY_CATEGORY for v in column]
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
