"""A small model made by the pipeline's own stage functions, for tests and the benchmark.

Generated rows go through the validate stage's schema inference, the split stage's frame and
reference profile and the train stage's pipeline, exactly as `dvc repro` would, only without DVC
and on less data: the serving side is tested on the real pipeline shape, not on a look-alike.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import pandas as pd

from mlgitops.config import Params, TrainConfig, parse_params
from mlgitops.data.generate import COLUMNS, GeneratorConfig, write_dataset
from mlgitops.data.prepare import encode_target, model_frame
from mlgitops.data.table import read_table
from mlgitops.data.validation import validate_table
from mlgitops.io import file_sha256, save_model_json
from mlgitops.modeling.pipeline import fit
from mlgitops.monitoring.operating_point import RELEASED_KEYS, build_reference
from mlgitops.monitoring.reference import Costs, ScoreReference, fit_calibration
from mlgitops.profile import ReferenceProfile
from mlgitops.profiling import build_profile
from mlgitops.records import ModelCard, save_record
from mlgitops.schema import TARGET_COLUMN, TrainingSchema
from tests.support.project import raw_params

PARAMS: Params = parse_params(raw_params())
# The default dataset's features as params.yaml declares them, in column order.
NUMERIC = [name for name in COLUMNS if PARAMS.data.column_types.get(name) == "numeric"]
CATEGORICAL = [name for name in COLUMNS if PARAMS.data.column_types.get(name) == "categorical"]
TARGET = PARAMS.data.target


@dataclass(frozen=True)
class DevData:
    schema: TrainingSchema
    # The features as the stages hand them to the model, plus TARGET as 0/1.
    frame: pd.DataFrame
    profile: ReferenceProfile


@dataclass(frozen=True)
class DevArtifacts:
    model_file: Path
    profile_file: Path
    schema_file: Path
    model_card_file: Path
    metadata: dict[str, object]
    frame: pd.DataFrame  # feature columns as the model takes them
    # Score bins and calibration over held-out generated rows (as stage score_reference writes).
    score_reference_file: Path | None = None


def dev_data(rows: int, seed: int) -> DevData:
    """Generated rows through the validate stage (schema) and the split stage (frame, profile)."""
    with tempfile.TemporaryDirectory(prefix="mlgitops-dev-") as tmp:
        path = Path(tmp) / "transactions.csv"
        write_dataset(path, GeneratorConfig(rows=rows, seed=seed))
        table = read_table(path, "csv")
    source = f"generated rows (seed {seed})"
    schema, _ = validate_table(table, PARAMS.data, PARAMS.validate_, source)
    features = model_frame(table, schema, source)
    labels = encode_target(table[schema.target], schema.positive_class)
    profile = build_profile(features, labels, schema, PARAMS.split)
    return DevData(schema, features.assign(**{TARGET: labels}), profile)


def hist_gradient_boosting(max_iter: int) -> TrainConfig:
    """params.yaml's train section with a HistGradientBoosting model of `max_iter` trees."""
    train = PARAMS.train
    hgb = train.hist_gradient_boosting.model_copy(update={"max_iter": max_iter})
    return train.model_copy(
        update={"model": "hist_gradient_boosting", "hist_gradient_boosting": hgb}
    )


def make_dev_artifacts(directory: Path, rows: int = 5000, max_iter: int = 60) -> DevArtifacts:
    """Train a small model and write model.joblib, reference_profile.json and schema.json."""
    directory.mkdir(parents=True, exist_ok=True)
    data = dev_data(rows, seed=7)
    schema = data.schema
    train = data.frame.rename(columns={TARGET: TARGET_COLUMN})
    config = hist_gradient_boosting(max_iter)
    pipeline = fit(train, schema, config)
    model_file = directory / "model.joblib"
    joblib.dump(pipeline, model_file)
    profile_file = directory / "reference_profile.json"
    save_model_json(data.profile, profile_file)
    schema_file = directory / "schema.json"
    save_model_json(schema, schema_file)
    metadata: dict[str, object] = {
        "threshold": 0.2,
        "threshold_policy": "fixed",
        "metrics": {"roc_auc": 0.9, "pr_auc": 0.4, "precision": 0.5, "recall": 0.6},
        "model_hash": f"sha256:{file_sha256(model_file)}",
        "data_hash": "md5:" + "0" * 32,
        "params_hash": "sha256:" + "1" * 64,
        "data_until": "2026-11-22T00:00:00+00:00",
        "feature_names": schema.feature_names,
        "positive_class": schema.positive_class,
    }
    card = ModelCard(
        model_hash=str(metadata["model_hash"]),
        model_type="hist_gradient_boosting",
        n_train_rows=len(train),
        train_label_rate=float(train[TARGET_COLUMN].mean()),
        data_until=None,
        features=schema.features,
        train_params=config.model_dump(mode="json"),
        mlgitops_version="0.1.0",
    )
    card_file = directory / "model_card.json"
    save_record(card, card_file)
    reference_file = directory / "score_reference.json"
    save_model_json(dev_reference(pipeline, schema, float(metadata["threshold"])), reference_file)
    return DevArtifacts(
        model_file,
        profile_file,
        schema_file,
        card_file,
        metadata,
        data.frame[schema.feature_names],
        reference_file,
    )


def dev_reference(pipeline: object, schema: TrainingSchema, threshold: float) -> ScoreReference:
    """The score reference of stage score_reference, on held-out rows: calibration fitted on
    one half, the rest as the test split."""
    held_out = dev_data(4000, seed=8).frame
    scores = pipeline.predict_proba(held_out[schema.feature_names])[:, 1]  # type: ignore[attr-defined]
    labels = held_out[TARGET].to_numpy().astype(int)
    half = len(scores) // 2
    calibration = fit_calibration(scores[:half], labels[:half])
    metrics = {"threshold": threshold} | dict.fromkeys(RELEASED_KEYS, 0.1)
    costs = Costs(false_positive=5.0, false_negative=120.0, currency="EUR")
    return build_reference(
        labels[half:], scores[half:], metrics, costs, 10, calibration=calibration
    )
