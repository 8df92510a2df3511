"""The score reference (mlgitops.monitoring.reference) built from a model's held-out scores: the
released operating point as monitoring sees it, and the check of its calibration.

CBPE needs calibrated probabilities: the calibration is fitted on the validation split (held out
from training) and only checked here on the test split: Brier score and reliability bins before
and after. Build side only; the service reads the reference, never builds it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlgitops.monitoring.reference import (
    OUTCOMES,
    Calibration,
    Costs,
    ScoreReference,
    brier,
    confusion_counts,
    expected_outcomes,
    rate,
    reliability_bins,
    row_costs,
    segment_values,
)
from mlgitops.profiling import numeric_profile

RELEASED_KEYS = ("precision", "recall", "fpr", "fnr", "expected_cost_per_1000", "alerts_per_1000")


def build_reference(
    labels: np.ndarray,
    scores: np.ndarray,
    metrics: dict,
    costs: Costs,
    bins: int,
    segments: dict[str, pd.Series] | None = None,
    calibration: Calibration | None = None,
) -> ScoreReference:
    threshold = float(metrics["threshold"])
    outcomes = expected_outcomes(scores, threshold, calibration)
    per_row = row_costs(outcomes, costs)
    expected = {name: float(outcomes[name].mean()) for name in OUTCOMES}
    flagged = scores >= threshold
    positive = labels == 1
    realized = confusion_counts(flagged, labels)
    by_segment = {}
    for column, raw in sorted((segments or {}).items()):
        values = segment_values(raw)
        by_segment[column] = {
            value: confusion_counts(flagged[values == value], labels[values == value])
            for value in sorted(set(values.tolist()))
        }
    return ScoreReference(
        n_rows=len(scores),
        n_positive=int(positive.sum()),
        threshold=threshold,
        score=numeric_profile(pd.Series(scores), bins),
        positive_rate=float(flagged.mean()),
        expected=expected,
        expected_cost_per_1000=float(per_row.mean() * 1000.0),
        expected_cost_std=float(per_row.std()),
        estimated_fpr=rate(expected["fp"], expected["fp"] + expected["tn"]),
        estimated_fnr=rate(expected["fn"], expected["fn"] + expected["tp"]),
        realized=realized,
        released={key: float(metrics[key]) for key in RELEASED_KEYS},
        costs=costs,
        segments=by_segment,
        calibration=calibration,
    )


def calibration_check(
    calibration: Calibration, scores: np.ndarray, labels: np.ndarray, bins: int
) -> dict:
    """The calibration on the test split (rows it was not fitted on): Brier score, mean
    predicted against actual positives, and reliability bins, raw and calibrated."""
    calibrated = calibration.apply(scores)
    reliability = reliability_bins(scores, calibrated, labels, bins)

    def ece(key: str) -> float:
        # Expected calibration error: the row-weighted gap between score and label rate per bin.
        gaps = [b["rows"] * abs(b[key] - b["label_rate"]) for b in reliability]
        return float(sum(gaps) / len(scores))

    return {
        "fitted_on": calibration.fitted_on,
        "fitted_rows": calibration.n_rows,
        "breakpoints": len(calibration.x),
        "test_rows": len(scores),
        "brier_raw": brier(scores, labels),
        "brier_calibrated": brier(calibrated, labels),
        "mean_raw": float(np.mean(scores)),
        "mean_calibrated": float(np.mean(calibrated)),
        "label_rate": float(np.mean(labels)),
        "ece_raw": ece("mean_score"),
        "ece_calibrated": ece("mean_calibrated"),
        "reliability": reliability,
    }
