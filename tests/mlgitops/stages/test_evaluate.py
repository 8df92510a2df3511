from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlgitops.io import load_pipeline
from mlgitops.modeling.evaluation import choose_threshold
from mlgitops.records import load_metrics
from mlgitops.schema import TARGET_COLUMN, load_schema
from mlgitops.stages import evaluate, split, train, validate


def test_run_writes_metrics_and_plots(params):
    validate.run(params)
    split.run(params)
    train.run(params)
    evaluate.run(params)
    metrics = json.loads(params.paths.metrics.read_text())
    assert 0.6 < metrics["roc_auc"] < 1.0
    for key in (
        "pr_auc",
        "precision",
        "recall",
        "fpr",
        "fnr",
        "threshold",
        "expected_cost_per_1000",
    ):
        assert key in metrics
    assert metrics["tp"] + metrics["fp"] + metrics["tn"] + metrics["fn"] == metrics["n_test"]
    roc = json.loads((params.paths.plots / "roc.json").read_text())
    assert roc[0] == {"fpr": 0.0, "tpr": 0.0}
    assert roc[-1] == {"fpr": 1.0, "tpr": 1.0}
    confusion = json.loads((params.paths.plots / "confusion.json").read_text())
    assert len(confusion) == metrics["n_test"]


def test_threshold_is_chosen_on_validation_and_measured_on_test(params):
    validate.run(params)
    split.run(params)
    train.run(params)
    evaluate.run(params)
    record = load_metrics(params.paths.metrics)
    assert record.threshold_chosen_on == "validation"
    model = load_pipeline(params.paths.model)
    schema = load_schema(params.paths.schema_file)
    val = pd.read_parquet(params.paths.validation)
    test = pd.read_parquet(params.paths.test)
    val_scores = model.predict_proba(val[schema.feature_names])[:, 1]
    val_labels = val[TARGET_COLUMN].to_numpy()
    # The threshold is the policy's choice on validation rows, not on the test rows.
    assert record.threshold == choose_threshold(val_labels, val_scores, params.threshold)
    assert record.n_test == len(test)
    assert record.validation.n_rows == len(val)
    test_scores = model.predict_proba(test[schema.feature_names])[:, 1]
    test_labels = test[TARGET_COLUMN].to_numpy()
    assert record.roc_auc == pytest.approx(roc_auc_score(test_labels, test_scores), abs=1e-6)
    assert record.validation.roc_auc == pytest.approx(
        roc_auc_score(val_labels, val_scores), abs=1e-6
    )
