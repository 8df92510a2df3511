"""Stage `evaluate`: the operating threshold is chosen by policy on the validation split, and the
metrics are measured on the test split at that threshold (mlgitops.modeling.evaluation); the
record, its headline figures and the curves for `dvc plots` are written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import DataQualityError
from mlgitops.io import atomic_write_text, load_pipeline
from mlgitops.modeling.evaluation import evaluate_model, plot_data
from mlgitops.records import EvaluationHeadline, save_headline, save_record
from mlgitops.schema import TARGET_COLUMN, load_schema


def _labelled_split(path: Path, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_parquet(path)
    labels = frame[TARGET_COLUMN].to_numpy().astype(int)
    if len(np.unique(labels)) < 2:
        raise DataQualityError(f"{path}: the {name} split has a single class")
    return frame, labels


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    validation, _ = _labelled_split(params.paths.validation, "validation")
    test, labels = _labelled_split(params.paths.test, "test")
    model = load_pipeline(params.paths.model)
    record, scores = evaluate_model(model, schema.feature_names, validation, test, params.threshold)
    save_record(record, params.paths.metrics)
    save_headline(EvaluationHeadline.of(record), params.paths.headline_evaluate)
    for name, rows in plot_data(labels, scores, record.threshold).items():
        atomic_write_text(Path(params.paths.plots) / name, json.dumps(rows) + "\n")
    return (
        f"test: ROC AUC {record.roc_auc:.4f}, PR AUC {record.pr_auc:.4f}, cost/1000 "
        f"{record.expected_cost_per_1000:.1f} {record.currency} at threshold "
        f"{record.threshold:.4f} ({params.threshold.policy}, chosen on validation): "
        f"precision {record.precision:.3f}, recall {record.recall:.3f}"
    )
