"""A small model with the pipeline's exact artifact shapes, for tests and the benchmark.

The train/split stages own the real artifacts; this builds stand-ins from the embedded data
generator so the serving side can be developed and tested without running `dvc repro`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from mlgitops.data.generate import COLUMNS, GeneratorConfig, generate_csv_text
from mlgitops.io import atomic_write_text, file_sha256
from mlgitops.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    normalize_category,
)
from mlgitops.schema import FeatureSpec, TrainingSchema
from tests.support.project import raw_params

# The default dataset's features as params.yaml declares them, in column order.
_DECLARED = raw_params()["data"]["column_types"]
NUMERIC = [name for name in COLUMNS if _DECLARED.get(name) == "numeric"]
CATEGORICAL = [name for name in COLUMNS if _DECLARED.get(name) == "categorical"]
TARGET = raw_params()["data"]["target"]


@dataclass(frozen=True)
class DevArtifacts:
    model_file: Path
    profile_file: Path
    schema_file: Path
    metadata: dict[str, object]
    frame: pd.DataFrame  # feature columns as the model takes them (test rows)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    text = generate_csv_text(GeneratorConfig(rows=rows, seed=seed))
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    frame = pd.DataFrame(index=raw.index)
    for name in NUMERIC:
        frame[name] = pd.to_numeric(raw[name].replace("", None), errors="coerce").astype("float64")
    for name in CATEGORICAL:
        values = [normalize_category(v) if v != "" else None for v in raw[name]]
        frame[name] = pd.Series(values, dtype=object).where(
            pd.Series(values, dtype=object).notna(), np.nan
        )
    frame[TARGET] = raw[TARGET].astype(int)
    return frame


def _profile(frame: pd.DataFrame) -> ReferenceProfile:
    features: dict[str, NumericProfile | CategoricalProfile] = {}
    for name in NUMERIC:
        column = frame[name]
        present = column.dropna()
        edges = [float(x) for x in np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9)))]
        bins = np.searchsorted(edges, present.to_numpy(), side="right")
        fractions = np.bincount(bins, minlength=len(edges) + 1) / max(len(present), 1)
        features[name] = NumericProfile(
            count=len(column),
            missing_rate=float(column.isna().mean()),
            min=float(present.min()),
            max=float(present.max()),
            mean=float(present.mean()),
            std=float(present.std()),
            bin_edges=edges,
            bin_fractions=[float(x) for x in fractions],
        )
    for name in CATEGORICAL:
        column = frame[name]
        shares = column.dropna().value_counts(normalize=True)
        features[name] = CategoricalProfile(
            count=len(column),
            missing_rate=float(column.isna().mean()),
            frequencies={str(k): float(v) for k, v in shares.items()},
        )
    return ReferenceProfile(
        n_rows=len(frame),
        target=TARGET,
        positive_class="1",
        label_rate=float(frame[TARGET].mean()),
        features=features,
    )


def build_pipeline(max_iter: int = 60) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        min_frequency=20,
        max_categories=64,
    )
    pre = ColumnTransformer(
        [("num", "passthrough", NUMERIC), ("cat", encoder, CATEGORICAL)],
        remainder="drop",
    )
    categorical_mask = [False] * len(NUMERIC) + [True] * len(CATEGORICAL)
    clf = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.1, categorical_features=categorical_mask, random_state=0
    )
    return Pipeline([("preprocess", pre), ("model", clf)])


def make_dev_artifacts(directory: Path, rows: int = 5000, max_iter: int = 60) -> DevArtifacts:
    """Train a small model and write model.joblib, reference_profile.json and schema.json."""
    directory.mkdir(parents=True, exist_ok=True)
    frame = _frame(rows, seed=7)
    features = frame[NUMERIC + CATEGORICAL]
    pipeline = build_pipeline(max_iter=max_iter)
    pipeline.fit(features, frame[TARGET])
    model_file = directory / "model.joblib"
    joblib.dump(pipeline, model_file)
    profile = _profile(frame)
    profile_file = directory / "reference_profile.json"
    atomic_write_text(profile_file, profile.model_dump_json(indent=2))
    schema = TrainingSchema(
        target=TARGET,
        positive_class="1",
        time_column="timestamp",
        features=tuple(FeatureSpec(name=n, kind="numeric", source="declared") for n in NUMERIC)
        + tuple(FeatureSpec(name=n, kind="categorical", source="declared") for n in CATEGORICAL),
        dropped_columns=("transaction_id",),
    )
    schema_file = directory / "schema.json"
    atomic_write_text(schema_file, schema.model_dump_json(indent=2))
    model_hash = file_sha256(model_file)
    metadata: dict[str, object] = {
        "threshold": 0.2,
        "threshold_policy": "fixed",
        "metrics": {"roc_auc": 0.9, "pr_auc": 0.4, "precision": 0.5, "recall": 0.6},
        "model_hash": f"sha256:{model_hash}",
        "data_hash": "md5:" + "0" * 32,
        "params_hash": "sha256:" + "1" * 64,
        "trained_at": "2026-11-22T00:00:00+00:00",
        "feature_names": NUMERIC + CATEGORICAL,
        "positive_class": "1",
    }
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    card = {
        "model_hash": metadata["model_hash"],
        "model_type": "hist_gradient_boosting",
        "trained_at": metadata["trained_at"],
        "train_params": {"model": "hist_gradient_boosting", "max_iter": max_iter},
    }
    (directory / "model_card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    return DevArtifacts(model_file, profile_file, schema_file, metadata, features)
