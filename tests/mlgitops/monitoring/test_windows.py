"""Windows of `mlgitops monitor`: whole days or hours that hold predictions, gaps between them,
or N rows in event-time order; sums per window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring.windows import assign_windows, window_counts, window_sums


def _times(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(stamps), utc=True))


def test_days_with_predictions_are_windows_and_empty_days_between_are_one_gap() -> None:
    times = _times("2025-01-06T10:00", "2025-01-01T23:59", "2025-01-02T00:00", "2025-01-01T00:00")
    windows = assign_windows(times, MonitoringConfig(window="day"))
    assert windows.keys == ["2025-01-01", "2025-01-02", "2025-01-06"]
    assert windows.index.tolist() == [2, 0, 1, 0]
    assert windows.ends[0] == pd.Timestamp("2025-01-02", tz="UTC")
    [gap] = windows.gaps
    assert (gap.first, gap.last, gap.windows) == ("2025-01-03", "2025-01-05", 3)
    assert (gap.after, gap.before) == ("2025-01-02", "2025-01-06")
    assert gap.figures()["end"] == "2025-01-06T00:00:00+00:00"
    assert windows.rows().tolist() == [2.0, 1.0, 1.0]


def test_hours_are_keyed_by_hour_and_adjacent_hours_leave_no_gap() -> None:
    times = _times("2025-01-01T09:59", "2025-01-01T10:00", "2025-01-01T10:30")
    windows = assign_windows(times, MonitoringConfig(window="hour"))
    assert windows.keys == ["2025-01-01T09", "2025-01-01T10"]
    assert windows.gaps == []
    assert windows.index.tolist() == [0, 1, 1]


def test_row_windows_follow_event_time_not_file_order() -> None:
    rng = np.random.default_rng(3)
    stamps = pd.date_range("2025-01-01", periods=25, freq="min", tz="UTC")
    shuffled = rng.permutation(25)
    windows = assign_windows(
        pd.DatetimeIndex(stamps[shuffled]), MonitoringConfig(window="rows", window_rows=10)
    )
    assert windows.keys == ["rows-000000", "rows-000001", "rows-000002"]
    # Row i of the shuffled input is the shuffled[i]-th in time: its window is that // 10.
    assert windows.index.tolist() == (shuffled // 10).tolist()
    assert windows.starts == [stamps[0], stamps[10], stamps[20]]
    assert windows.ends == [stamps[9], stamps[19], stamps[24]]
    assert windows.rows().tolist() == [10.0, 10.0, 5.0]


def test_no_rows_no_windows() -> None:
    windows = assign_windows(_times(), MonitoringConfig())
    assert windows.keys == []
    assert windows.gaps == []
    assert len(windows.index) == 0


def test_sums_and_counts_match_a_loop() -> None:
    rng = np.random.default_rng(5)
    window = rng.integers(0, 4, 500)
    bins = rng.integers(0, 6, 500)
    weights = rng.random(500)
    sums = window_sums(window, weights, 5)  # window 4 holds no row
    counts = window_counts(window, bins, 5, 6)
    for w in range(5):
        assert np.isclose(sums[w], weights[window == w].sum())
        for b in range(6):
            assert counts[w, b] == np.sum((window == w) & (bins == b))
    assert sums[4] == 0
    assert counts.dtype == np.float64
