"""Online monitoring counts of one batch, in the bins of the metric contract, and the memory of
recent predictions that feedback joins its labels to.

`metric_names.py` says what the service exports; this module computes it, per batch: the bin of
every (row, feature) by the profile's binning rule (`mlgitops.profile.bin_label` /
`bin_indices`), the score bin over the score reference, and CBPE's expected outcomes from the
calibrated score at the operating threshold. The counts are aggregated per batch, so the caller
makes one `inc(n)` per touched series; counters then sum exactly across workers and pods.

Small batches (the common single-row request) are binned in plain Python (bisect and one dict
lookup per value): for a handful of values that is faster than building numpy arrays. Larger
batches use np.searchsorted and np.bincount over all features at once.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlgitops.monitoring.reference import OUTCOMES, Calibration, ScoreReference
from mlgitops.profile import (
    MISSING_BIN,
    UNSEEN_BIN,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    bin_labels,
)

# At or below this many rows a batch is binned in Python.
SMALL_BATCH = 16


@dataclass(frozen=True)
class _Numeric:
    offset: int  # slot of bin 0 in the flat list of (feature, bin) series
    edges: list[float]
    edges_array: np.ndarray
    missing: int  # slot of the missing bin


@dataclass(frozen=True)
class _Categorical:
    offset: int
    # Category -> slot; None (a missing value) -> the missing slot.
    slots: dict[str | None, int]
    unseen: int


@dataclass(frozen=True)
class BatchStats:
    """Counts of one batch: (slot, rows) of the touched feature bins, (score bin, rows) and the
    expected outcomes (sums of calibrated probabilities)."""

    feature_bins: list[tuple[int, int]]
    score_bins: list[tuple[str, int]]
    expected: dict[str, float]


class OnlineStats:
    """Binning plan for a profile (features in model input order) and a score reference."""

    def __init__(self, profile: ReferenceProfile, reference: ScoreReference | None) -> None:
        self.series: list[tuple[str, str]] = []  # slot -> (feature, bin)
        self._plans: list[_Numeric | _Categorical] = []
        for name, spec in profile.features.items():
            offset = len(self.series)
            labels = bin_labels(spec)
            self.series.extend((name, label) for label in labels)
            if isinstance(spec, NumericProfile):
                edges = [float(e) for e in spec.bin_edges]
                plan: _Numeric | _Categorical = _Numeric(
                    offset, edges, np.asarray(edges, dtype="float64"), offset + len(labels) - 1
                )
            else:
                assert isinstance(spec, CategoricalProfile)
                slots: dict[str | None, int] = {
                    c: offset + i for i, c in enumerate(spec.frequencies)
                }
                slots[None] = offset + labels.index(MISSING_BIN)
                plan = _Categorical(offset, slots, offset + labels.index(UNSEEN_BIN))
            self._plans.append(plan)
        self.reference = reference
        self.score_labels: list[str] = bin_labels(reference.score) if reference else []
        self._score_edges = [float(e) for e in reference.score.bin_edges] if reference else []
        self._calibration: Calibration | None = reference.calibration if reference else None
        self.threshold = reference.threshold if reference else math.nan

    def feature_bins(self, columns: Sequence[Sequence[Any]]) -> list[tuple[int, int]]:
        """(slot, rows) for every touched (feature, bin), from the validated columns (floats with
        NaN for numeric features, normalised strings or None for categorical ones)."""
        n = len(columns[0]) if columns else 0
        if n == 0:
            return []
        if n <= SMALL_BATCH:
            counts: dict[int, int] = {}
            for plan, column in zip(self._plans, columns, strict=True):
                if isinstance(plan, _Numeric):
                    edges, offset, missing = plan.edges, plan.offset, plan.missing
                    for v in column:
                        slot = missing if v != v else offset + bisect_right(edges, v)
                        counts[slot] = counts.get(slot, 0) + 1
                else:
                    slots, unseen = plan.slots, plan.unseen
                    for v in column:
                        slot = slots.get(v, unseen)
                        counts[slot] = counts.get(slot, 0) + 1
            return list(counts.items())
        parts = []
        for plan, column in zip(self._plans, columns, strict=True):
            if isinstance(plan, _Numeric):
                values = np.fromiter(column, dtype=np.float64, count=n)
                index = np.searchsorted(plan.edges_array, values, side="right") + plan.offset
                parts.append(np.where(np.isnan(values), plan.missing, index))
            else:
                slots, unseen = plan.slots, plan.unseen
                parts.append(np.fromiter((slots.get(v, unseen) for v in column), np.int64, n))
        counts_array = np.bincount(np.concatenate(parts), minlength=len(self.series))
        touched = np.flatnonzero(counts_array)
        return list(zip(touched.tolist(), counts_array[touched].tolist(), strict=True))

    def score_bins(self, scores: list[float]) -> list[tuple[str, int]]:
        if self.reference is None:
            return []
        labels, edges = self.score_labels, self._score_edges
        counts: dict[str, int] = {}
        for s in scores:
            label = labels[bisect_right(edges, s)]
            counts[label] = counts.get(label, 0) + 1
        return list(counts.items())

    def expected(self, scores: list[float], flags: Sequence[int]) -> dict[str, float]:
        """CBPE sums over the batch: flagged rows add p to tp and 1-p to fp, the others p to fn
        and 1-p to tn, p the calibrated score (`flags`: the served labels, score >= threshold)."""
        if self.reference is None:
            return {}
        calibration = self._calibration
        if len(scores) <= SMALL_BATCH:
            x, y = (calibration.x, calibration.y) if calibration else ([], [])
            tp = fn = 0.0
            n_flagged = 0
            for s, flag in zip(scores, flags, strict=True):
                p = _interp(x, y, s) if calibration else s
                if flag:
                    tp += p
                    n_flagged += 1
                else:
                    fn += p
        else:
            array = np.asarray(scores, dtype="float64")
            p = calibration.apply(array) if calibration else array
            flagged = np.asarray(flags, dtype=bool)
            n_flagged = int(flagged.sum())
            tp, fn = float(p[flagged].sum()), float(p[~flagged].sum())
        out = {"tp": tp, "fp": n_flagged - tp, "fn": fn, "tn": (len(scores) - n_flagged) - fn}
        return {k: out[k] for k in OUTCOMES if out[k] > 0.0}

    def batch(self, columns: Sequence[Sequence[Any]], scores: Any, flags: list[int]) -> BatchStats:
        values = scores.tolist() if hasattr(scores, "tolist") else list(scores)
        return BatchStats(
            self.feature_bins(columns), self.score_bins(values), self.expected(values, flags)
        )


def _interp(x: list[float], y: list[float], value: float) -> float:
    """np.interp(value, x, y) for one value: linear between breakpoints, clipped outside."""
    i = bisect_right(x, value)
    if i == 0:
        return y[0]
    if i == len(x):
        return y[-1]
    x0, x1 = x[i - 1], x[i]
    return y[i - 1] + (y[i] - y[i - 1]) * (value - x0) / (x1 - x0)


class Served:
    """One request's served labels and entity ids, and the label recorded per row so far."""

    __slots__ = ("ids", "labels", "recorded", "size")

    def __init__(self, labels: bytes, ids: list[Any] | None, size: int) -> None:
        self.labels = labels
        self.ids = ids
        # Per row: 0 no label yet, else 1 + the label recorded (replays are told apart).
        self.recorded = bytearray(len(labels))
        self.size = size

    def __len__(self) -> int:
        return len(self.labels)

    def entity(self, row: int) -> Any:
        return self.ids[row] if self.ids is not None else None

    def recorded_label(self, row: int) -> int | None:
        mark = self.recorded[row]
        return mark - 1 if mark else None

    def record(self, row: int, label: int) -> None:
        self.recorded[row] = 1 + label


# What an entry costs beyond its parts: the dict slot, the Served object and its containers.
ENTRY_OVERHEAD = 240


class RecentPredictions:
    """The served labels (and entity ids) of recent requests by request id, so /feedback can be
    joined to its prediction in this worker. Bounded in rows and in bytes (entity ids are client
    data of any length), oldest dropped first; a label for a prediction another worker (or pod)
    served, or one evicted, is not joined here. Keys are the ids this service issues, never a
    client's: a client cannot overwrite or evict another's entry by naming it."""

    def __init__(self, capacity: int, capacity_bytes: int = 64 << 20) -> None:
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self._by_request: dict[str, Served] = {}
        self.rows = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._by_request)

    def add(self, request_id: str, labels: list[int], ids: list[Any] | None) -> None:
        if self.capacity <= 0 or self.capacity_bytes <= 0:
            return
        served = Served(bytes(labels), ids, 0)
        size = ENTRY_OVERHEAD + sys.getsizeof(request_id)
        size += sys.getsizeof(served.labels) + sys.getsizeof(served.recorded)
        if ids is not None:
            # The ids are the request's own objects, kept alive by the cache from now on.
            size += sys.getsizeof(ids) + sum(sys.getsizeof(i) for i in ids if i is not None)
        served.size = size
        if len(labels) > self.capacity or size > self.capacity_bytes:
            return  # larger than the whole cache: kept nowhere rather than emptying it
        self.forget(request_id)
        self._by_request[request_id] = served
        self.rows += len(labels)
        self.bytes += size
        while self.rows > self.capacity or self.bytes > self.capacity_bytes:
            self.forget(next(iter(self._by_request)))

    def forget(self, request_id: str) -> None:
        old = self._by_request.pop(request_id, None)
        if old is not None:
            self.rows -= len(old)
            self.bytes -= old.size

    def get(self, request_id: str) -> Served | None:
        return self._by_request.get(request_id)

    def label(self, request_id: str, row: int) -> int | None:
        """The label served for `row` of the request, if this worker still holds it."""
        served = self._by_request.get(request_id)
        if served is None or row >= len(served):
            return None
        return served.labels[row]
