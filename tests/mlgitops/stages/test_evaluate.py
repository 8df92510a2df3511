from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlgitops.config import ThresholdConfig
from mlgitops.io import load_pipeline
from mlgitops.records import load_metrics
from mlgitops.schema import TARGET_COLUMN, load_schema
from mlgitops.stages import evaluate, split, train, validate


def _brute_force_cost(labels, scores, config):
    best = None
    for t in np.append(np.unique(scores), 1.1):
        predicted = scores >= t
        cost = config.false_positive_cost * np.sum(predicted & (labels == 0)) + (
            config.false_negative_cost * np.sum(~predicted & (labels == 1))
        )
        if best is None or cost <= best[0]:
            best = (cost, t)
    return best[0]


@pytest.mark.parametrize("seed", range(5))
def test_min_expected_cost_is_minimal(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(500) < 0.1).astype(int)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    config = ThresholdConfig(
        policy="min_expected_cost", false_positive_cost=3, false_negative_cost=40
    )
    threshold = evaluate.choose_threshold(labels, scores, config)
    metrics = evaluate.compute_metrics(labels, scores, threshold, config)
    cost = 3 * metrics["fp"] + 40 * metrics["fn"]
    assert cost == _brute_force_cost(labels, scores, config)


def test_target_recall_is_met_with_the_highest_threshold():
    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.2).astype(int)
    scores = rng.random(1000) * 0.5 + labels * 0.4
    config = ThresholdConfig(policy="target_recall", target_recall=0.9)
    threshold = evaluate.choose_threshold(labels, scores, config)
    recall = evaluate.compute_metrics(labels, scores, threshold, config)["recall"]
    assert recall >= 0.9
    higher = np.min(scores[scores > threshold])
    assert evaluate.compute_metrics(labels, scores, higher, config)["recall"] < 0.9


def test_fixed_policy():
    config = ThresholdConfig(policy="fixed", fixed_threshold=0.3)
    assert evaluate.choose_threshold(np.array([0, 1]), np.array([0.1, 0.9]), config) == 0.3


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
    assert record.threshold == evaluate.choose_threshold(val_labels, val_scores, params.threshold)
    assert record.n_test == len(test)
    assert record.validation.n_rows == len(val)
    test_scores = model.predict_proba(test[schema.feature_names])[:, 1]
    test_labels = test[TARGET_COLUMN].to_numpy()
    assert record.roc_auc == pytest.approx(roc_auc_score(test_labels, test_scores), abs=1e-6)
    assert record.validation.roc_auc == pytest.approx(
        roc_auc_score(val_labels, val_scores), abs=1e-6
    )
