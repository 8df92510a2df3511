"""The threshold policies against brute force, and the metrics at the chosen threshold."""

from __future__ import annotations

import numpy as np
import pytest

from mlgitops.config import ThresholdConfig
from mlgitops.modeling import evaluation


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
    threshold = evaluation.choose_threshold(labels, scores, config)
    metrics = evaluation.compute_metrics(labels, scores, threshold, config)
    cost = 3 * metrics["fp"] + 40 * metrics["fn"]
    assert cost == _brute_force_cost(labels, scores, config)


def test_target_recall_is_met_with_the_highest_threshold():
    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.2).astype(int)
    scores = rng.random(1000) * 0.5 + labels * 0.4
    config = ThresholdConfig(policy="target_recall", target_recall=0.9)
    threshold = evaluation.choose_threshold(labels, scores, config)
    recall = evaluation.compute_metrics(labels, scores, threshold, config)["recall"]
    assert recall >= 0.9
    higher = np.min(scores[scores > threshold])
    assert evaluation.compute_metrics(labels, scores, higher, config)["recall"] < 0.9


def test_fixed_policy():
    config = ThresholdConfig(policy="fixed", fixed_threshold=0.3)
    assert evaluation.choose_threshold(np.array([0, 1]), np.array([0.1, 0.9]), config) == 0.3
