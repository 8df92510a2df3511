"""Windows of `mlgitops monitor`: which rows fall in which window, and sums per window."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlgitops.config import MonitoringConfig


@dataclass(frozen=True)
class Gap:
    """Whole windows without a prediction between two windows with some."""

    first: str  # key of the first empty window
    last: str  # key of the last one
    start: pd.Timestamp
    end: pd.Timestamp
    windows: int
    after: str  # key of the window before the gap
    before: str  # key of the window after it

    def figures(self) -> dict[str, object]:
        return {
            "first": self.first,
            "last": self.last,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "windows": self.windows,
            "after": self.after,
            "before": self.before,
        }


@dataclass(frozen=True)
class Windows:
    keys: list[str]
    starts: list[pd.Timestamp]
    ends: list[pd.Timestamp]
    index: np.ndarray  # window of each row
    gaps: list[Gap] = field(default_factory=list)

    def sums(self, weights: np.ndarray) -> np.ndarray:
        """Sum of `weights` over the rows of each window."""
        return window_sums(self.index, weights, len(self.keys))

    def rows(self) -> np.ndarray:
        """Rows in each window, as floats (the figures divide by them)."""
        return np.bincount(self.index, minlength=len(self.keys)).astype(float)


def assign_windows(event_time: pd.DatetimeIndex, config: MonitoringConfig) -> Windows:
    """Windows by event time: the whole hours or days that hold predictions (a run of empty
    ones between them is one Gap, however long), or N rows in time order."""
    n = len(event_time)
    if n == 0:
        return Windows([], [], [], np.zeros(0, dtype=np.int64))
    if config.window == "rows":
        order = np.argsort(event_time.asi8, kind="stable")
        index = np.empty(n, dtype=np.int64)
        index[order] = np.arange(n) // config.window_rows
        count = int(index.max()) + 1
        sorted_times = event_time[order]
        starts = [sorted_times[i * config.window_rows] for i in range(count)]
        ends = [sorted_times[min((i + 1) * config.window_rows, n) - 1] for i in range(count)]
        return Windows([f"rows-{i:06d}" for i in range(count)], starts, ends, index)
    freq = "h" if config.window == "hour" else "D"
    floors = event_time.floor(freq)
    present = floors.unique().sort_values()
    windows = floor_windows(list(present), config)
    index = present.get_indexer(floors).astype(np.int64).reshape(-1)
    return Windows(windows.keys, windows.starts, windows.ends, index, windows.gaps)


def floor_windows(present: list[pd.Timestamp], config: MonitoringConfig) -> Windows:
    """Hour or day windows starting at `present` (sorted, distinct), with the gaps between
    them; `index` is left empty (the rows are counted elsewhere)."""
    freq, fmt = ("h", "%Y-%m-%dT%H") if config.window == "hour" else ("D", "%Y-%m-%d")
    step = pd.Timedelta(1, unit=freq)
    starts = list(present)
    keys = [t.strftime(fmt) for t in starts]
    gaps = []
    for i in range(len(starts) - 1):
        if starts[i + 1] - starts[i] <= step:
            continue
        first, last = starts[i] + step, starts[i + 1] - step
        gaps.append(
            Gap(
                first=first.strftime(fmt),
                last=last.strftime(fmt),
                start=first,
                end=starts[i + 1],
                windows=int((starts[i + 1] - starts[i]) // step) - 1,
                after=keys[i],
                before=keys[i + 1],
            )
        )
    ends = [t + step for t in starts]
    return Windows(keys, starts, ends, np.zeros(0, dtype=np.int64), gaps)


def window_sums(window: np.ndarray, weights: np.ndarray, n_windows: int) -> np.ndarray:
    """Sum of `weights` per window, given each row's window."""
    return np.bincount(window, weights=weights, minlength=n_windows)


def window_counts(window: np.ndarray, bins: np.ndarray, n_windows: int, n_bins: int) -> np.ndarray:
    """Rows per (window, bin): a windows x bins matrix of floats."""
    flat = np.bincount(window * n_bins + bins, minlength=n_windows * n_bins)
    return flat.reshape(n_windows, n_bins).astype("float64")
