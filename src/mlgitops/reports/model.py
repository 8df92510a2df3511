"""The report's JSON twin (`paths.report_json`), a typed artifact committed beside the page.

The HTML page is rendered from this record alone. What compares between releases (headline
figures, operating points, calibration summary) sits in mappings, and the long tables (slices,
examples, bins, curve) in lists. It is a DVC output, not a DVC metric: `dvc metrics show`
lists the stages' headline figures (metrics/), which a person compares across experiments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mlgitops.io import load_model_json
from mlgitops.model_base import FrozenModel


class Estimate(FrozenModel):
    """A figure and its 95 % interval."""

    value: float
    low: float
    high: float


class Lineage(FrozenModel):
    bento_tag: str
    image: str
    model_hash: str
    data_hash: str
    params_hash: str
    # Never a commit sha: the report is written before its own commit exists (see stages/report).
    commit: str
    threshold: float
    threshold_policy: str
    threshold_chosen_on: str


class SplitSummary(FrozenModel):
    rows: int
    positives: int
    start: str | None
    end: str | None


class DataSummary(FrozenModel):
    time_column: str | None
    start: str | None
    end: str | None
    splits: dict[str, SplitSummary]


class Headline(FrozenModel):
    """The test split at the released threshold, scaled to a production day."""

    sentence: str
    threshold: float
    fnr: Estimate
    fpr: Estimate
    false_alarms_per_day: Estimate
    missed_per_day: Estimate
    caught_per_day: Estimate
    reviews_per_day: Estimate
    cost_per_day: Estimate
    daily_volume: float
    positive_rate: float
    positive_rate_source: Literal["params", "test split"]
    review_capacity_per_day: float
    false_positive_cost: float
    false_negative_cost: float
    currency: str
    assumptions: list[str]


class OperatingPoint(FrozenModel):
    label: str
    threshold: float
    validation_recall: float
    fpr: Estimate
    fnr: Estimate
    reviews_per_day: Estimate
    missed_per_day: Estimate
    caught_per_day: Estimate
    cost_per_day: Estimate
    within_capacity: bool


class CurvePoint(FrozenModel):
    threshold: float
    validation_cost_per_day: float
    test_cost_per_day: float


class Tradeoffs(FrozenModel):
    released: str
    why: str
    points: dict[str, OperatingPoint]
    curve: list[CurvePoint]


class FeatureValue(FrozenModel):
    name: str
    value: str
    # Why the value is unusual against the training split, None when it is not.
    unusual: str | None


class Example(FrozenModel):
    row: int
    score: float
    features: list[FeatureValue]


class Slice(FrozenModel):
    feature: str
    segment: str
    rows: int
    positives: int
    fnr: Estimate | None
    fpr: Estimate | None
    cost_per_1000: float
    excess_cost: float


class CalibrationBin(FrozenModel):
    rows: int
    mean_score: float
    observed_rate: Estimate


class Calibration(FrozenModel):
    brier: float
    # The Brier score of always predicting the test split's positive rate.
    brier_baseline: float
    bins: list[CalibrationBin]


class FailureModes(FrozenModel):
    false_positives: list[Example]
    false_negatives: list[Example]
    slices: list[Slice]
    slices_suppressed: int
    min_slice_count: int
    overall_cost_per_1000: float
    calibration: Calibration


class Figure(FrozenModel):
    """A figure with its 95 % interval where one is computed (rates from counts)."""

    value: float
    low: float | None = None
    high: float | None = None


class MetricChange(FrozenModel):
    name: str
    current: Figure
    previous: Figure | None


class Changes(FrozenModel):
    previous_commit: str | None
    previous_bento_tag: str | None
    note: str
    rows: list[MetricChange]


class ModelReport(FrozenModel):
    report_version: Literal[1] = 1
    title: str
    lineage: Lineage
    data: DataSummary
    headline: Headline
    tradeoffs: Tradeoffs
    failure_modes: FailureModes
    changes: Changes


def load_report(path: Path) -> ModelReport:
    return load_model_json(ModelReport, path)
