"""What monitoring compares traffic with, beyond the input profile: the released operating point.

Written by the `score_reference` stage from the model and the held-out test split (not the
training split, whose scores are optimistic): the score distribution over fixed quantile bins,
the prediction rate, the label-free (CBPE) expected outcomes and the realized confusion counts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from mlgitops.confusion import Confusion, error_cost
from mlgitops.io import load_model_json
from mlgitops.model_base import FrozenModel
from mlgitops.profile import MISSING_BIN, NumericProfile

if TYPE_CHECKING:  # the service imports this module (score reference, calibration); no pandas
    import pandas as pd

OUTCOMES = ("tp", "fp", "tn", "fn")


class Costs(FrozenModel):
    false_positive: float
    false_negative: float
    currency: str


class Calibration(FrozenModel):
    """Isotonic map from the model's score to a calibrated probability, fitted on the validation
    split (never the training rows): linear between breakpoints, clipped outside them, exactly
    `IsotonicRegression(out_of_bounds="clip").predict`. Used only by CBPE's expected outcomes;
    the served score stays the model's."""

    method: Literal["isotonic"] = "isotonic"
    fitted_on: Literal["validation"] = "validation"
    n_rows: int
    # Increasing raw scores and the calibrated probability at each (non-decreasing).
    x: list[float]
    y: list[float]

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype="float64"), self.x, self.y)


class ScoreReference(FrozenModel):
    reference_version: Literal[1] = 1
    n_rows: int
    n_positive: int
    threshold: float
    # The score as a numeric feature: the same binning rule as the inputs.
    score: NumericProfile
    positive_rate: float
    # Per-row means over the test split of CBPE's expected outcomes (sum to 1).
    expected: dict[str, float]
    expected_cost_per_1000: float
    # Standard deviation of one row's expected cost: the sampling error of a window's mean.
    expected_cost_std: float
    estimated_fpr: float
    estimated_fnr: float
    # Realized confusion counts on the test split at the threshold: the released values.
    realized: dict[str, int]
    released: dict[str, float]
    costs: Costs
    # Realized confusion counts on the test split per value of each declared segment column:
    # a segment is compared with its own released figures, not the overall ones.
    segments: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    # The calibration CBPE applies to scores (service counters, `mlgitops monitor` and the
    # expected figures above alike); None in references written before it, meaning raw scores.
    calibration: Calibration | None = None


def expected_outcomes(
    scores: np.ndarray, threshold: float, calibration: Calibration | None = None
) -> dict[str, np.ndarray]:
    """CBPE per row: a flagged row (raw score >= threshold) is a TP with probability p and an FP
    with 1−p; an unflagged row is an FN with p and a TN with 1−p, p = calibration(score)."""
    raw = np.asarray(scores, dtype="float64")
    flagged = raw >= threshold
    scores = calibration.apply(raw) if calibration is not None else raw
    return {
        "tp": np.where(flagged, scores, 0.0),
        "fp": np.where(flagged, 1.0 - scores, 0.0),
        "tn": np.where(flagged, 0.0, 1.0 - scores),
        "fn": np.where(flagged, 0.0, scores),
    }


def fit_calibration(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    """Isotonic regression of held-out 0/1 labels on scores, as breakpoints."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(np.asarray(scores, dtype="float64"), np.asarray(labels, dtype="float64"))
    return Calibration(
        n_rows=len(scores),
        x=[float(v) for v in iso.X_thresholds_],
        y=[float(v) for v in iso.y_thresholds_],
    )


def brier(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.asarray(probabilities, dtype="float64")
    return float(np.mean((p - np.asarray(labels, dtype="float64")) ** 2))


def reliability_bins(
    raw: np.ndarray, calibrated: np.ndarray, labels: np.ndarray, bins: int
) -> list[dict[str, float]]:
    """Equal-count bins of the raw score: mean raw and calibrated score against the label rate."""
    order = np.argsort(raw, kind="stable")
    out = []
    for chunk in np.array_split(order, bins):
        if chunk.size == 0:
            continue
        out.append(
            {
                "rows": int(chunk.size),
                "mean_score": float(raw[chunk].mean()),
                "mean_calibrated": float(calibrated[chunk].mean()),
                "label_rate": float(labels[chunk].mean()),
            }
        )
    return out


def row_costs(outcomes: dict[str, np.ndarray], costs: Costs) -> np.ndarray:
    return error_cost(outcomes["fp"], outcomes["fn"], costs.false_positive, costs.false_negative)


def confusion_counts(flagged: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    return Confusion.of(flagged, labels).as_dict()


def segment_values(column: pd.Series) -> np.ndarray:
    """Segment value of each row: the normalised category, "missing" for gaps."""
    return column.astype(object).where(column.notna(), MISSING_BIN).astype(str).to_numpy()


def rate(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def load_score_reference(path: Path) -> ScoreReference:
    return load_model_json(ScoreReference, path)
