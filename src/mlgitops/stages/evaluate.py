"""Stage `evaluate`: metrics on the test split at an operating threshold chosen by policy.

Policies: `min_expected_cost` (the threshold minimising false_positive_cost * FP +
false_negative_cost * FN, the business trade-off), `target_recall` (the highest threshold that
still catches `target_recall` of the positives) and `fixed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from mlgitops.config import Params, ThresholdConfig
from mlgitops.errors import DataQualityError
from mlgitops.io import atomic_write_text, load_pipeline
from mlgitops.records import EvaluationMetrics, save_record
from mlgitops.schema import TARGET_COLUMN, load_schema

# Plot files stay small enough to diff and render: curves are thinned to this many points.
MAX_CURVE_POINTS = 400


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def at(cls, labels: np.ndarray, scores: np.ndarray, threshold: float) -> Confusion:
        predicted = scores >= threshold
        positive = labels == 1
        return cls(
            tp=int(np.sum(predicted & positive)),
            fp=int(np.sum(predicted & ~positive)),
            tn=int(np.sum(~predicted & ~positive)),
            fn=int(np.sum(~predicted & positive)),
        )


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
        cost = config.false_positive_cost * fp + config.false_negative_cost * fn
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
    cost = config.false_positive_cost * c.fp + config.false_negative_cost * c.fn
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "threshold": float(threshold),
        "precision": c.tp / (c.tp + c.fp) if c.tp + c.fp else 0.0,
        "recall": c.tp / (c.tp + c.fn) if c.tp + c.fn else 0.0,
        "fpr": c.fp / (c.fp + c.tn) if c.fp + c.tn else 0.0,
        "fnr": c.fn / (c.fn + c.tp) if c.fn + c.tp else 0.0,
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


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    test = pd.read_parquet(params.paths.test)
    labels = test[TARGET_COLUMN].to_numpy().astype(int)
    if len(np.unique(labels)) < 2:
        raise DataQualityError(f"{params.paths.test}: the test split has a single class")
    model = load_pipeline(params.paths.model)
    scores = model.predict_proba(test[schema.feature_names])[:, 1]
    threshold = choose_threshold(labels, scores, params.threshold)
    metrics = compute_metrics(labels, scores, threshold, params.threshold)
    record = EvaluationMetrics(
        # The threshold stays exact: serving must cut where evaluation did.
        **{
            k: (round(v, 6) if isinstance(v, float) and k != "threshold" else v)
            for k, v in metrics.items()
        },
        threshold_policy=params.threshold.policy,
        currency=params.threshold.currency,
    )
    save_record(record, params.paths.metrics)
    for name, rows in plot_data(labels, scores, threshold).items():
        atomic_write_text(Path(params.paths.plots) / name, json.dumps(rows) + "\n")
    return (
        f"ROC AUC {metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f}, threshold "
        f"{threshold:.4f} ({params.threshold.policy}): precision {metrics['precision']:.3f}, "
        f"recall {metrics['recall']:.3f}"
    )
