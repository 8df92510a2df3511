"""What monitoring compares traffic with, beyond the input profile: the released operating point.

Written by the `score_reference` stage from the model and the held-out test split (not the
training split, whose scores are optimistic): the score distribution over fixed quantile bins,
the prediction rate, the label-free (CBPE) expected outcomes and the realized confusion counts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlgitops.io import load_model_json
from mlgitops.profile import MISSING_BIN, NumericProfile

OUTCOMES = ("tp", "fp", "tn", "fn")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Costs(_Frozen):
    false_positive: float
    false_negative: float
    currency: str


class ScoreReference(_Frozen):
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
    segments: dict[str, dict[str, dict[str, int]]] = {}


def expected_outcomes(scores: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """CBPE per row: a flagged row is a TP with probability p and an FP with 1−p; an unflagged
    row is an FN with p and a TN with 1−p (p taken as calibrated)."""
    scores = np.asarray(scores, dtype="float64")
    flagged = scores >= threshold
    return {
        "tp": np.where(flagged, scores, 0.0),
        "fp": np.where(flagged, 1.0 - scores, 0.0),
        "tn": np.where(flagged, 0.0, 1.0 - scores),
        "fn": np.where(flagged, 0.0, scores),
    }


def row_costs(outcomes: dict[str, np.ndarray], costs: Costs) -> np.ndarray:
    return costs.false_positive * outcomes["fp"] + costs.false_negative * outcomes["fn"]


def confusion_counts(flagged: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    positive = labels == 1
    return {
        "tp": int(np.sum(flagged & positive)),
        "fp": int(np.sum(flagged & ~positive)),
        "tn": int(np.sum(~flagged & ~positive)),
        "fn": int(np.sum(~flagged & positive)),
    }


def segment_values(column: pd.Series) -> np.ndarray:
    """Segment value of each row: the normalised category, "missing" for gaps."""
    return column.astype(object).where(column.notna(), MISSING_BIN).astype(str).to_numpy()


def rate(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def load_score_reference(path: Path) -> ScoreReference:
    return load_model_json(ScoreReference, path)
