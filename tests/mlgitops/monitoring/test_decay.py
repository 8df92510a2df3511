"""Slow decay: CUSUM of the standardised per-window cost alarms on a sustained excess, and only
when the trailing windows' pooled cost confirms it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import drift_stats
from mlgitops.monitoring.decay import CostStream, cusum_figures

CONFIG = MonitoringConfig(cusum_k=0.5, cusum_h=5.0, slow_windows=3, slow_min_cost_increase=0.1)
KEYS = [f"d{i}" for i in range(10)]


def _stream(z: list[float], cost_per_row: list[float], rows: float = 1_000.0) -> CostStream:
    count = np.full(len(z), rows)
    return CostStream("expected_cost", z, np.asarray(cost_per_row) * count, count, 1.0, 2.0)


def test_a_sustained_excess_alarms_once_cusum_and_the_pooled_cost_agree() -> None:
    z = [0.0] * 3 + [2.0] * 7
    cost = [1.0] * 3 + [1.3] * 7
    figures, alerts = cusum_figures((_stream(z, cost),), KEYS, 10_000, 2.33, CONFIG)
    levels = drift_stats.cusum(np.asarray(z), 0.5)
    assert [f["expected_cost"] for f in figures] == pytest.approx(levels.tolist())
    # Level 1.5 a window from d3 on: 6.0 >= 5 first at d6.
    assert [a.window for a in alerts] == ["d6", "d7", "d8", "d9"]
    assert alerts[0].value == 6.0
    assert "the last 3 windows cost +30% vs the reference" in alerts[0].message
    assert figures[4]["expected_cost_pooled_excess"] == pytest.approx((1.0 + 1.3 + 1.3) / 3 - 1)
    spread = 2.0 * math.sqrt(1 / 3_000 + 1 / 10_000)
    assert figures[9]["expected_cost_pooled_z"] == pytest.approx(0.3 / spread)


def test_a_high_cusum_without_a_material_pooled_excess_stays_quiet() -> None:
    figures, alerts = cusum_figures((_stream([3.0] * 10, [1.05] * 10),), KEYS, 10_000, 2.33, CONFIG)
    assert figures[-1]["expected_cost"] >= CONFIG.cusum_h
    assert alerts == []


def test_windows_without_a_value_leave_the_level_unchanged_and_empty_pools_are_nan() -> None:
    stream = CostStream("realized_cost", [math.nan] * 2, np.zeros(2), np.zeros(2), 1.0, 2.0)
    figures, alerts = cusum_figures((stream,), KEYS[:2], 10_000, 2.33, CONFIG)
    assert [f["realized_cost"] for f in figures] == [0.0, 0.0]
    assert math.isnan(figures[0]["realized_cost_pooled_z"])
    assert alerts == []
