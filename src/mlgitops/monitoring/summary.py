"""The result of `mlgitops monitor`: the typed summary and its JSON file.

The model is the file: every figure as written (NaN and inf as null, floats rounded to six
digits, whole numbers as integers, flags as 0/1), so reading the file back gives the same model
and writing the model gives the same bytes. A key the check does not produce (the window
figures of an unusable input, `unseen` of a numeric feature, a segment's released bounds before
it has enough labels) is absent from the file, not null: `to_json` leaves unset fields out.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import PlainSerializer, model_validator

from mlgitops.errors import MonitoringAlertError, MonitoringInputError
from mlgitops.model_base import FrozenModel
from mlgitops.monitoring.alerts import Alert, Number

Status = Literal["ok", "alert", "unusable"]
# The exit code of `mlgitops monitor` for each status (the CLI exits by the error class).
STATUS_EXIT = {
    "ok": 0,
    "alert": MonitoringAlertError.exit_code,
    "unusable": MonitoringInputError.exit_code,
}
# A yes/no figure: a bool to read, 0/1 in the file (as it always was).
Flag = Annotated[bool, PlainSerializer(int, return_type=int)]
Figure = Number | None  # None: no data (no labels yet, an empty denominator)


class DriftFigures(FrozenModel):
    """One window's drift of one input (or the score) against the reference profile."""

    rows: int
    psi: Figure
    psi_threshold: Figure
    js: Figure
    test: Literal["ks", "chi2"]
    statistic: Figure
    p_value: Figure
    effect: Figure
    effect_name: Literal["ks_d", "cramers_v"]
    p_adjusted: Figure
    drift: Flag


class NewCategory(FrozenModel):
    count: int
    examples: list[str]


class FeatureFigures(DriftFigures):
    missing_rate: Figure
    missing_rate_low: Figure
    missing_rate_high: Figure
    reference_missing_rate: Figure
    # Categorical features only.
    unseen: int | None = None
    unseen_share: Figure = None
    new_categories: dict[str, NewCategory] | None = None


class ScoreFigures(DriftFigures):
    flag_rate: Figure
    flag_rate_low: Figure
    flag_rate_high: Figure
    reference_flag_rate: Figure


class EstimatedFigures(FrozenModel):
    """Label-free (CBPE) figures: expected outcomes from the calibrated scores."""

    expected_tp: Figure
    expected_fp: Figure
    expected_tn: Figure
    expected_fn: Figure
    fpr: Figure
    fnr: Figure
    precision: Figure
    recall: Figure
    cost_per_1000: Figure
    reference_cost_per_1000: Figure
    cost_z: Figure


class ConfusionFigures(FrozenModel):
    """Realized outcomes of the labelled rows, each rate with its Wilson interval."""

    labelled: int
    tp: int
    fp: int
    tn: int
    fn: int
    precision: Figure
    precision_low: Figure
    precision_high: Figure
    recall: Figure
    recall_low: Figure
    recall_high: Figure
    fpr: Figure
    fpr_low: Figure
    fpr_high: Figure
    fnr: Figure
    fnr_low: Figure
    fnr_high: Figure
    cost_per_1000: Figure


class RealizedFigures(ConfusionFigures):
    coverage: Figure
    delay_hours_median: Figure
    delay_hours_p90: Figure
    released_fpr: Figure
    released_fnr: Figure
    released_fpr_high: Figure
    released_fnr_high: Figure
    released_cost_per_1000: Figure
    mature: Flag


class SegmentFigures(ConfusionFigures):
    rows: int
    flag_rate: Figure
    estimated_cost_per_1000: Figure
    # Only once the segment has enough labels and released figures to compare with.
    released_fpr_high: Figure = None
    released_fnr_high: Figure = None


class CusumFigures(FrozenModel):
    expected_cost: Figure
    expected_cost_pooled_excess: Figure
    expected_cost_pooled_z: Figure
    realized_cost: Figure
    realized_cost_pooled_excess: Figure
    realized_cost_pooled_z: Figure


class WindowFigures(FrozenModel):
    start: str
    end: str
    rows: int
    status: Literal["ok", "too_few_rows"]
    features: dict[str, FeatureFigures]
    score: ScoreFigures
    estimated: EstimatedFigures
    realized: RealizedFigures
    cusum: CusumFigures
    # "column=value" -> figures; only when segments are declared and present in the logs.
    segments: dict[str, SegmentFigures] | None = None


class GapFigures(FrozenModel):
    """Whole windows without a prediction between two windows with some."""

    first: str
    last: str
    start: str
    end: str
    windows: int
    after: str
    before: str


class OtherVersion(FrozenModel):
    rows: int
    first: str
    last: str


class ReferenceFigures(FrozenModel):
    profile_rows: int
    threshold: Number
    flag_rate: Figure
    expected_cost_per_1000: Figure
    released: dict[str, Figure]
    false_alarm_rate: Number
    correction: str


class InputCounts(FrozenModel):
    """What the readers took in and left out. Field order is the HTML report's."""

    log_files: int
    log_lines: int
    malformed_lines: int
    malformed_examples: list[str]
    cut_lines: int
    long_lines: int
    cut_archives: list[str]
    label_files: int
    label_rows: int
    malformed_labels: int
    malformed_label_examples: list[str]
    cut_label_archives: list[str]


class MonitorSummary(FrozenModel):
    """reports/monitor/summary.json. The figures of the check are absent when the input was
    unusable before any could be computed (then `error` says why)."""

    status: Status
    exit_code: int  # STATUS_EXIT of the status; derived from it when not given
    model_version: str | None
    error: str | None = None
    notes: list[str]
    alerts: list[Alert]
    alerts_total: int
    alerts_by_kind: dict[str, int]
    cusum_h: Number
    input: InputCounts
    as_of: str | None = None
    rows: int | None = None
    windows_total: int | None = None
    window: str | None = None
    gaps: list[GapFigures] | None = None
    rows_without_event_time: int | None = None
    labels_given: Flag | None = None
    other_model_versions: dict[str, OtherVersion] | None = None
    other_model_version_rows: int | None = None
    labels_matched: int | None = None
    label_coverage: Figure = None
    windows: dict[str, WindowFigures] | None = None
    reference: ReferenceFigures | None = None

    @model_validator(mode="before")
    @classmethod
    def _exit_code_of_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and "exit_code" not in data and data.get("status") in STATUS_EXIT:
            return {**data, "exit_code": STATUS_EXIT[data["status"]]}
        return data

    @model_validator(mode="after")
    def _exit_code_matches_status(self) -> MonitorSummary:
        if self.exit_code != STATUS_EXIT[self.status]:
            raise ValueError(
                f"exit_code {self.exit_code} is not the exit code of status {self.status!r}"
            )
        return self

    @classmethod
    def of(cls, figures: dict[str, Any]) -> MonitorSummary:
        """The summary of raw figures (numpy scalars, NaN, unrounded floats)."""
        return cls.model_validate(clean(figures))

    def document(self) -> dict[str, Any]:
        """The file's content as plain JSON values."""
        return self.model_dump(exclude_unset=True)

    def to_json(self) -> str:
        return json.dumps(self.document(), indent=1, sort_keys=True) + "\n"


def _num(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def clean(value: Any) -> Any:
    """JSON-ready: NaN/inf become null, floats rounded (stable files), keys sorted later."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = _num(float(value))
        if number is not None and number.is_integer() and abs(number) < 1e15:
            return int(number)
        return number
    return value
