"""What fires in `mlgitops monitor` and what each alert says: judged on hand-made figures."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring.alerts import (
    Alert,
    degraded,
    expected_cost_alert,
    gap_alert,
    labels_late_alert,
    rate_alerts,
    score_alerts,
)
from mlgitops.monitoring.windows import Gap

CONFIG = MonitoringConfig(min_rows=100, min_rate_increase=0.2, min_label_coverage=0.5)


def _gap(windows: int) -> Gap:
    start = pd.Timestamp("2025-01-03", tz="UTC")
    last = "2025-01-03" if windows == 1 else "2025-01-05"
    return Gap("2025-01-03", last, start, start, windows, "2025-01-02", "2025-01-06")


def test_a_gap_is_one_alert_naming_its_span() -> None:
    one = gap_alert(_gap(1), CONFIG)
    assert (one.kind, one.window, one.subject, one.value) == (
        "no_traffic",
        "2025-01-03",
        "traffic",
        0,
    )
    assert "no predictions in this day" in one.message
    three = gap_alert(_gap(3), CONFIG)
    assert three.window == "2025-01-03..2025-01-05"
    assert "for 3 days (a gap between 2025-01-02 and 2025-01-06)" in three.message


def test_alerts_are_frozen_and_refuse_unknown_kinds() -> None:
    alert = gap_alert(_gap(1), CONFIG)
    with pytest.raises(ValidationError):
        alert.kind = "slow_decay"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="kind"):
        Alert(kind="everything_fine", window="w", subject="s", message="m")  # type: ignore[arg-type]


def _rates(fpr: float, fpr_low: float) -> dict:
    return {"fpr": fpr, "fpr_low": fpr_low, "fnr": 0.1, "fnr_low": 0.05}


def test_degraded_needs_both_the_intervals_apart_and_a_material_increase() -> None:
    # Low bound above the released high bound, and 30% above released: degraded.
    assert degraded(_rates(0.13, 0.11), "fpr", 0.105, 0.10, CONFIG)
    # Intervals overlap: not degraded, however high the point estimate.
    assert not degraded(_rates(0.20, 0.10), "fpr", 0.105, 0.10, CONFIG)
    # Apart, but only 10% worse: not material.
    assert not degraded(_rates(0.11, 0.106), "fpr", 0.105, 0.10, CONFIG)
    # No labels, no bound.
    assert not degraded({"fpr": None, "fpr_low": None}, "fpr", 0.105, 0.10, CONFIG)


def test_rate_alerts_name_the_rate_and_both_bounds() -> None:
    figures = _rates(0.13, 0.11)
    [alert] = rate_alerts("2025-01-01", figures, {"fpr": 0.10, "fnr": 0.1}, (0.105, 0.2), CONFIG)
    assert (alert.kind, alert.subject, alert.threshold) == ("fpr_degraded", "fpr", 0.105)
    assert alert.message == (
        "2025-01-01: realized FPR 0.130 (Wilson low 0.110) above the released 0.100 (high 0.105)"
    )


def test_labels_late_only_when_a_source_was_given_and_the_window_is_due() -> None:
    def late(labelled: float, mature: bool = True, given: bool = True) -> Alert | None:
        return labels_late_alert("w", labelled, 400.0, mature, given, CONFIG)

    assert late(100.0) is not None
    assert late(100.0).value == 0.25
    assert late(300.0) is None  # 75% labelled
    assert late(100.0, mature=False) is None
    assert late(100.0, given=False) is None


def test_expected_cost_alert_needs_z_and_a_material_increase() -> None:
    figures = {"cost_per_1000": 130.0, "reference_cost_per_1000": 100.0, "cost_z": 3.0}
    alert = expected_cost_alert("w", figures, 500.0, 2.33, CONFIG)
    assert alert is not None
    assert alert.threshold == pytest.approx(120.0)
    assert expected_cost_alert("w", {**figures, "cost_z": 2.0}, 500.0, 2.33, CONFIG) is None
    assert (
        expected_cost_alert("w", {**figures, "cost_per_1000": 115.0}, 500.0, 2.33, CONFIG) is None
    )
    assert expected_cost_alert("w", figures, 50.0, 2.33, CONFIG) is None  # too few rows


def test_score_collapse_when_all_or_none_are_flagged() -> None:
    score = {"drift": 0, "psi": 0.0, "psi_threshold": 0.1, "flag_rate": 0.0}
    [alert] = score_alerts("w", score, 0.5, 0.0, 400.0, 0.05, CONFIG)
    assert alert.kind == "score_collapse"
    assert alert.threshold == 0.05
    assert score_alerts("w", {**score, "flag_rate": 0.05}, 0.5, 20.0, 400.0, 0.05, CONFIG) == []
    drifted = score_alerts("w", {**score, "drift": 1, "psi": 0.4}, 0.5, 20.0, 400.0, 0.05, CONFIG)
    assert [a.kind for a in drifted] == ["score_drift"]
