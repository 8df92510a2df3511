"""The operating threshold, chosen by policy on the validation split, and the metrics measured on
the test split at that threshold (stage `evaluate` writes them).

Choosing the threshold on the rows it is then measured on would flatter the cost figures (the
cut is fitted to that sample's noise); the validation figures are written too, labelled, so the
size of that optimism is visible.

Policies: `min_expected_cost` (the threshold minimising false_positive_cost * FP +
false_negative_cost * FN, the business trade-off), `target_recall` (the highest threshold that
still catches `target_recall` of the positives) and `fixed`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from mlgitops.config import ThresholdConfig
from mlgitops.confusion import Confusion, error_cost
from mlgitops.records import EvaluationMetrics, ValidationFigures
from mlgitops.schema import TARGET_COLUMN

# Plot files stay small enough to diff and render: curves are thinned to this many points.
MAX_CURVE_POINTS = 400


def _candidates(scores: np.ndarray) -> np.ndarray:
    # Every distinct score is a possible cut; 1.0 + eps means "flag nothing".
    return np.append(np.unique(scores), np.nextafter(1.0, 2.0))


def choose_threshold(labels: np.ndarray, scores: np.ndarray, config: ThresholdConfig) -> float:
    if config.policy == "fixed":
        return config.fixed_threshold
    thresholds = _candidates(scores)
    order = np.argsort(scores)
    sorted_scores, sorted_labels = scores[order], labels[order]
    # For each candidate t: positions with score < t are predicted negative.
    cut = np.searchsorted(sorted_scores, thresholds, side="left")
    fn = np.concatenate([[0], np.cumsum(sorted_labels)])[cut]
    negatives_below = np.concatenate([[0], np.cumsum(1 - sorted_labels)])[cut]
    total_pos = int(labels.sum())
    fp = (len(labels) - total_pos) - negatives_below
    if config.policy == "min_expected_cost":
        cost = error_cost(fp, fn, config.false_positive_cost, config.false_negative_cost)
        # Among equal costs prefer the higher threshold: fewer alerts for the same money.
        best = np.flatnonzero(cost == cost.min())[-1]
        return float(thresholds[best])
    recall = (total_pos - fn) / max(total_pos, 1)
    meets = np.flatnonzero(recall >= config.target_recall)
    return float(thresholds[meets[-1]]) if meets.size else float(thresholds[0])


def compute_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float, config: ThresholdConfig
) -> dict[str, float]:
    c = Confusion.at(labels, scores, threshold)
    n = len(labels)
    cost = c.cost(config.false_positive_cost, config.false_negative_cost)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "threshold": float(threshold),
        **c.rates(),
        "tp": c.tp,
        "fp": c.fp,
        "tn": c.tn,
        "fn": c.fn,
        "n_test": n,
        "test_label_rate": float(labels.mean()),
        # Business terms: per 1,000 transactions, how many alerts to review, frauds missed, cost.
        "alerts_per_1000": 1000.0 * (c.tp + c.fp) / n,
        "missed_frauds_per_1000": 1000.0 * c.fn / n,
        "expected_cost_per_1000": 1000.0 * cost / n,
    }


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= MAX_CURVE_POINTS:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, MAX_CURVE_POINTS).round().astype(int))
    return frame.iloc[keep]


def plot_data(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, list[dict]]:
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    roc = _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}))
    pr = _thin(pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]}))
    predicted = (scores >= threshold).astype(int)
    confusion = [
        {"actual": int(a), "predicted": int(p)} for a, p in zip(labels, predicted, strict=True)
    ]
    return {
        "roc.json": roc.round(6).to_dict(orient="records"),
        "precision_recall.json": pr.round(6).to_dict(orient="records"),
        "confusion.json": confusion,
    }


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    # The threshold stays exact: serving must cut where evaluation did.
    return {
        k: (round(v, 6) if isinstance(v, float) and k != "threshold" else v)
        for k, v in metrics.items()
    }


def evaluate_model(
    model: object,
    feature_names: list[str],
    validation: pd.DataFrame,
    test: pd.DataFrame,
    config: ThresholdConfig,
) -> tuple[EvaluationMetrics, np.ndarray]:
    """Threshold by policy on `validation`, metrics on `test`; also the test scores."""
    val_labels = validation[TARGET_COLUMN].to_numpy().astype(int)
    test_labels = test[TARGET_COLUMN].to_numpy().astype(int)
    val_scores = model.predict_proba(validation[feature_names])[:, 1]  # type: ignore[attr-defined]
    test_scores = model.predict_proba(test[feature_names])[:, 1]  # type: ignore[attr-defined]
    threshold = choose_threshold(val_labels, val_scores, config)
    on_validation = compute_metrics(val_labels, val_scores, threshold, config)
    figures = ValidationFigures(
        n_rows=len(val_labels),
        label_rate=round(float(val_labels.mean()), 6),
        **{
            k: round(on_validation[k], 6)
            for k in ValidationFigures.model_fields
            if k not in {"n_rows", "label_rate"}
        },
    )
    record = EvaluationMetrics(
        **_rounded(compute_metrics(test_labels, test_scores, threshold, config)),
        threshold_policy=config.policy,
        currency=config.currency,
        threshold_chosen_on="validation",
        validation=figures,
    )
    return record, test_scores
