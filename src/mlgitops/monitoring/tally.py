"""The monitor's per-row work, reduced to small tables that merge exactly.

A block of predictions (one block of one file, one Parquet row group, or all of a small frame)
becomes a `Tally`: integer counts per (window, feature, bin), per (window, score bin), per
window (rows, flags, realized outcomes, labels), per (window, segment value), exact sums of the
label-free expected outcomes and costs, the label delays by value, and the first example ids of
each unseen category. Tallies merge by adding integers (and keeping the earliest examples), so
any split of the rows into blocks, files, partitions or workers gives the same merged tally,
and the same figures (monitoring.check), as one pass over one table.

Float sums are exact: every value is split into integer pieces of its mantissa per binary
exponent, the pieces are summed as integers and the total is rounded once (`exact_total`), so
a sum does not depend on the order or grouping of its terms.

Rows carry an order key (partition, row within it) so "the first ids in event-time order" is
the same whatever the partitioning: the single-process path sorts by event time, stably.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlgitops.config import MonitoringConfig
from mlgitops.logline import entity_keys
from mlgitops.monitoring.labeljoin import LatestLabels
from mlgitops.monitoring.logs import (
    EVENT_TIME,
    EVENT_TIME_LOGGED,
    KEY,
    LABEL,
    REQUEST_KEY,
    SCORE,
    TIME,
    VERSION,
)
from mlgitops.monitoring.reference import ScoreReference, expected_outcomes, row_costs
from mlgitops.profile import UNSEEN_BIN, CategoricalProfile, ReferenceProfile, bin_indices
from mlgitops.profile import bin_labels as profile_bin_labels

# Mantissa pieces of an exact sum: 53 bits in three pieces of at most 18 bits, so a piece's
# sum over 2^35 rows still fits an int64 (and float64 bincount weights stay exact).
_PIECE_BITS = 18
_PIECES = 3
# The windowing of a check: each row's window key from its event time (ns) and order key.
WindowOf = Callable[[np.ndarray, int, np.ndarray], np.ndarray]


def floor_windows(config: MonitoringConfig) -> WindowOf | None:
    """Hour and day windows: a row's key is its event time floored (UTC), in ns. None for
    `rows` windows, whose keys need every event time first (see rows_windows)."""
    if config.window == "rows":
        return None
    step = np.int64(3_600_000_000_000 if config.window == "hour" else 86_400_000_000_000)

    def window_of(event_ns: np.ndarray, part: int, rows: np.ndarray) -> np.ndarray:
        return event_ns - np.mod(event_ns, step)

    return window_of


def rows_windows(boundaries: list[tuple[int, int, int]]) -> WindowOf:
    """`rows` windows: window i starts at the i-th boundary (event ns, partition, row) in the
    stable event-time order of all rows; a row's key is the last boundary at or before it."""
    times = np.asarray([b[0] for b in boundaries], dtype=np.int64)

    def window_of(event_ns: np.ndarray, part: int, rows: np.ndarray) -> np.ndarray:
        low = np.searchsorted(times, event_ns, side="left")
        high = np.searchsorted(times, event_ns, side="right")
        key = low - 1
        for i in np.flatnonzero(high > low):  # ties in time: the order key decides
            here = (int(event_ns[i]), part, int(rows[i]))
            key[i] = low[i] - 1 + sum(1 for b in boundaries[low[i] : high[i]] if b <= here)
        return key.astype(np.int64)

    return window_of


@dataclass(frozen=True)
class TallyPlan:
    """What a block is tallied against: fixed before any block is read."""

    profile: ReferenceProfile
    reference: ScoreReference
    config: MonitoringConfig
    model_version: str | None
    window_of: WindowOf
    labels: LatestLabels | None = None
    # `rows` windows: each window's first row (event ns, partition, row) and last event ns.
    boundaries: list[tuple[tuple[int, int, int], int]] | None = None

    @property
    def subjects(self) -> list[tuple[str, object]]:
        """The binned inputs: every feature, then the score."""
        return [*self.profile.features.items(), ("score", self.reference.score)]


def nanoseconds(times: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC times as int64 nanoseconds, whatever their unit."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


@dataclass
class Prescan:
    """What must be known of all rows before any is tallied: the latest log time of this
    version's rows and, for `rows` windows, their event times (by event time logged) in order."""

    last_logged_ns: int | None = None
    # logged -> (event ns, partition, row) arrays
    times: dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, other: Prescan) -> None:
        if other.last_logged_ns is not None:
            known = [t for t in (self.last_logged_ns, other.last_logged_ns) if t is not None]
            self.last_logged_ns = max(known)
        for logged, arrays in other.times.items():
            mine = self.times.get(logged)
            self.times[logged] = (
                arrays
                if mine is None
                else tuple(np.concatenate(p) for p in zip(mine, arrays, strict=True))
            )


def _mine(frame: pd.DataFrame, model_version: str | None) -> np.ndarray:
    if model_version is None:
        return np.ones(len(frame), dtype=bool)
    return (frame[VERSION].fillna("(none)") == model_version).to_numpy()


def _logged(frame: pd.DataFrame) -> np.ndarray:
    if EVENT_TIME_LOGGED in frame.columns:
        return frame[EVENT_TIME_LOGGED].to_numpy(dtype=bool)
    return np.ones(len(frame), dtype=bool)


def prescan_block(
    frame: pd.DataFrame, model_version: str | None, part: int, first_row: int, times: bool
) -> Prescan:
    mine = _mine(frame, model_version)
    out = Prescan()
    if mine.any():
        out.last_logged_ns = int(nanoseconds(frame[TIME])[mine].max())
    if times:
        event_ns = nanoseconds(frame[EVENT_TIME])
        rows = np.arange(first_row, first_row + len(frame), dtype=np.int64)
        logged = _logged(frame)
        for flag in (True, False):
            chosen = mine & (logged == flag)
            if chosen.any():
                parts = np.full(int(chosen.sum()), part, dtype=np.int64)
                out.times[flag] = (event_ns[chosen], parts, rows[chosen])
    return out


def rows_boundaries(
    prescans: list[Prescan], logged: bool | None, window_rows: int
) -> list[tuple[tuple[int, int, int], int]]:
    """`rows` windows of `window_rows` rows in stable event-time order: each window's first
    row (event ns, partition, row) and its last event time. Holds every event time (8 bytes a
    row, plus the order keys): the one part of the monitor whose memory grows with the rows."""
    whole = Prescan()
    for prescan in prescans:
        whole.add(prescan)
    if logged is None or logged not in whole.times:
        return []
    event_ns, parts, rows = whole.times[logged]
    order = np.lexsort((rows, parts, event_ns))
    n = len(order)
    out = []
    for start in range(0, n, window_rows):
        first = order[start]
        last = order[min(start + window_rows, n) - 1]
        key = (int(event_ns[first]), int(parts[first]), int(rows[first]))
        out.append((key, int(event_ns[last])))
    return out


def _grouped(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Integer columns summed per key, sorted by key: the one merge rule of every table."""
    if frame.empty:
        return frame.reset_index(drop=True)
    return frame.groupby(keys, sort=True, as_index=False).sum()


def _codes(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct combinations of `columns` (each group's values, sorted) and each row's
    group number: a vectorised group-by key (integer codes, no tuples)."""
    uniques, inverses = [], []
    for column in columns:
        column = np.asarray(column)
        if column.dtype == object:
            inverse, unique = pd.factorize(column, sort=True)
            unique = np.asarray(unique, dtype=object)
        else:
            unique, inverse = np.unique(column, return_inverse=True)
        uniques.append(unique)
        inverses.append(inverse.reshape(-1).astype(np.int64))
    shape = tuple(len(u) for u in uniques)
    combined = np.ravel_multi_index(inverses, shape) if len(columns) > 1 else inverses[0]
    present, codes = np.unique(combined, return_inverse=True)
    positions = np.unravel_index(present, shape)
    levels = [u[i] for u, i in zip(uniques, positions, strict=True)]
    return levels, codes.reshape(-1)


def group_sums(groups: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Integer `values` summed per distinct combination of `groups` (sorted by them)."""
    if not len(next(iter(groups.values()))):
        return pd.DataFrame({**{k: [] for k in groups}, **{k: [] for k in values}})
    levels, codes = _codes(*groups.values())
    n = len(levels[0])
    out: dict[str, np.ndarray] = dict(zip(groups, levels, strict=True))
    for name, column in values.items():
        # Exact: float64 weights are whole numbers far below 2^53 here.
        out[name] = np.bincount(codes, weights=column, minlength=n).astype(np.int64)
    return pd.DataFrame(out)


def exact_pieces(groups: dict[str, np.ndarray], values: np.ndarray) -> pd.DataFrame:
    """The exact sum of `values` per group, as integer mantissa pieces per binary exponent."""
    mantissa, exponent = np.frexp(np.asarray(values, dtype="float64"))
    whole = np.ldexp(np.abs(mantissa), 53).astype(np.int64)  # exact: 53 significant bits
    sign = np.where(mantissa < 0, -1, 1).astype(np.int64)
    nonzero = whole != 0
    mask = (1 << _PIECE_BITS) - 1
    pieces = {
        f"p{i}": (sign * ((whole >> (i * _PIECE_BITS)) & mask))[nonzero] for i in range(_PIECES)
    }
    keys = {k: np.asarray(v)[nonzero] for k, v in groups.items()}
    keys["exponent"] = exponent.astype(np.int64)[nonzero]
    return group_sums(keys, pieces)


def exact_total(pieces: pd.DataFrame) -> float:
    """The sum the pieces stand for, rounded once to the nearest float."""
    if pieces.empty:
        return 0.0
    terms: list[tuple[int, int]] = []
    for exponent, *parts in pieces[["exponent", *(f"p{i}" for i in range(_PIECES))]].itertuples(
        index=False
    ):
        for i, amount in enumerate(parts):
            if amount:
                terms.append((int(amount), int(exponent) - 53 + i * _PIECE_BITS))
    if not terms:
        return 0.0
    low = min(shift for _, shift in terms)
    numerator = sum(amount << (shift - low) for amount, shift in terms)
    return numerator / (1 << -low) if low < 0 else float(numerator << low)


def exact_totals(pieces: pd.DataFrame, by: list[str]) -> dict[tuple, float]:
    """exact_total per group of `by`."""
    if pieces.empty:
        return {}
    return {
        (key if isinstance(key, tuple) else (key,)): exact_total(group)
        for key, group in pieces.groupby(by, sort=True)
    }


@dataclass
class Subset:
    """The tallies of this model version's rows that carry their own event time (or that do
    not: `logged` False), per window key."""

    windows: pd.DataFrame  # window; rows, flagged, labelled, tp, fp, tn, fn
    bins: pd.DataFrame  # subject, window, bin; rows
    expected: pd.DataFrame  # outcome, window, exponent; pieces (outcome "cost": row cost)
    delays: pd.DataFrame  # window, delay_ns; rows (labelled rows with a label time)
    unseen: pd.DataFrame  # subject, window, value; rows
    examples: pd.DataFrame  # subject, window, value, event_ns, part, row, id (earliest kept)
    segments: pd.DataFrame  # column, window, value; rows, flagged, tp, fp, tn, fn
    segment_cost: pd.DataFrame  # column, window, value, exponent; pieces

    @property
    def rows(self) -> int:
        return int(self.windows["rows"].sum()) if len(self.windows) else 0


@dataclass
class Tally:
    """A mergeable tally of some blocks of predictions (see the module's note)."""

    subsets: dict[bool, Subset] = field(default_factory=dict)  # by event time logged
    # Other model versions: rows, earliest and latest event time (ns).
    other: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {"version": pd.Series([], dtype=object), "rows": [], "first": [], "last": []}
        ).astype({"rows": np.int64, "first": np.int64, "last": np.int64})
    )
    last_logged_ns: int | None = None  # latest log time of this version's rows


_OUTCOME_KEYS = ("tp", "fp", "tn", "fn")


def _confusion_columns(flagged: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    positive, negative = truth == 1, truth == 0
    return {
        "tp": (flagged & positive).astype(np.int64),
        "fp": (flagged & negative).astype(np.int64),
        "tn": (~flagged & negative).astype(np.int64),
        "fn": (~flagged & positive).astype(np.int64),
    }


def tally_block(frame: pd.DataFrame, plan: TallyPlan, part: int, first_row: int) -> Tally:
    """The tally of one block of predictions (read_predictions' columns); its rows are rows
    first_row, first_row+1, ... of partition `part`."""
    config, reference = plan.config, plan.reference
    order = np.arange(first_row, first_row + len(frame), dtype=np.int64)
    versions = frame[VERSION].fillna("(none)")
    tally = Tally()
    mine = _mine(frame, plan.model_version)
    event_all = nanoseconds(frame[EVENT_TIME])
    if (~mine).any():
        other = pd.DataFrame({"version": versions[~mine].to_numpy(), "ns": event_all[~mine]})
        tally.other = (
            other.groupby("version", sort=True)["ns"]
            .agg(rows="size", first="min", last="max")
            .reset_index()
            .astype({"rows": np.int64})
        )
    if mine.any():
        tally.last_logged_ns = int(nanoseconds(frame[TIME])[mine].max())
    logged_flags = _logged(frame)
    for logged in (True, False):
        chosen = mine & (logged_flags == logged)
        if chosen.any():
            rows = frame[chosen].reset_index(drop=True)
            tally.subsets[logged] = _subset(rows, plan, part, order[chosen], reference, config)
    return tally


def _subset(
    rows: pd.DataFrame,
    plan: TallyPlan,
    part: int,
    order: np.ndarray,
    reference: ScoreReference,
    config: MonitoringConfig,
) -> Subset:
    event_ns = nanoseconds(rows[EVENT_TIME])
    window = plan.window_of(event_ns, part, order)
    scores = rows[SCORE].to_numpy(dtype="float64")
    logged_label = rows[LABEL].to_numpy(dtype="float64")
    flagged = np.where(np.isnan(logged_label), scores >= reference.threshold, logged_label == 1)
    if plan.labels is not None:
        truth, label_time = plan.labels.lookup(rows)
    else:
        truth = np.full(len(rows), np.nan)
        label_time = np.full(len(rows), np.iinfo(np.int64).min, dtype=np.int64)
    labelled = ~np.isnan(truth)
    per_row = {
        "rows": np.ones(len(rows), dtype=np.int64),
        "flagged": flagged.astype(np.int64),
        "labelled": labelled.astype(np.int64),
        **_confusion_columns(flagged, truth),
    }
    windows = group_sums({"window": window}, per_row)

    bins_parts, unseen_parts, example_parts = [], [], []
    ids = entity_keys(rows[KEY], rows[REQUEST_KEY]).to_numpy(dtype=object)
    window_keys, window_index = np.unique(window, return_inverse=True)
    window_index = window_index.reshape(-1)
    for subject, (name, spec) in enumerate(plan.subjects):
        values = scores if name == "score" and subject == len(plan.subjects) - 1 else rows[name]
        index = bin_indices(spec, values)
        n_bins = len(profile_bin_labels(spec))
        # One bincount over (window, bin) cells: the hot loop of the monitor.
        counts = np.bincount(window_index * n_bins + index, minlength=len(window_keys) * n_bins)
        cell = np.flatnonzero(counts)
        bins_parts.append(
            pd.DataFrame(
                {
                    "subject": subject,
                    "window": window_keys[cell // n_bins],
                    "bin": cell % n_bins,
                    "rows": counts[cell].astype(np.int64),
                }
            )
        )
        if isinstance(spec, CategoricalProfile):
            where = np.flatnonzero(index == profile_bin_labels(spec).index(UNSEEN_BIN))
            if where.size:
                raw = rows[name].to_numpy()[where].astype(str)
                cells = pd.DataFrame(
                    {"subject": subject, "window": window[where], "value": raw, "rows": 1}
                )
                unseen_parts.append(_grouped(cells, ["subject", "window", "value"]))
                example_parts.append(
                    cells.drop(columns="rows").assign(
                        event_ns=event_ns[where], part=part, row=order[where], id=ids[where]
                    )
                )
    bins = pd.concat(bins_parts, ignore_index=True)

    expected = expected_outcomes(scores, reference.threshold, reference.calibration)
    cost = row_costs(expected, reference.costs)
    expected_parts = [
        exact_pieces({"window": window}, v).assign(outcome=name)
        for name, v in [*expected.items(), ("cost", cost)]
    ]

    have_time = labelled & (label_time != np.iinfo(np.int64).min)
    logged_ns = nanoseconds(rows[TIME])
    delays = group_sums(
        {"window": window[have_time], "delay_ns": label_time[have_time] - logged_ns[have_time]},
        {"rows": np.ones(int(have_time.sum()))},
    )
    segments, segment_cost = segment_cells(rows, config, window, flagged, truth, cost)
    return Subset(
        windows=windows,
        bins=bins,
        expected=pd.concat(expected_parts, ignore_index=True),
        delays=delays,
        unseen=_concat(unseen_parts, ["subject", "window", "value", "rows"]),
        examples=_earliest(
            _concat(example_parts, [*_EXAMPLE_KEYS, "event_ns", "part", "row", "id"]),
            config.example_ids,
        ),
        segments=segments,
        segment_cost=segment_cost,
    )


_EXAMPLE_KEYS = ["subject", "window", "value"]


def _concat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(parts, ignore_index=True)


def _earliest(examples: pd.DataFrame, keep: int) -> pd.DataFrame:
    """The first `keep` examples of each (subject, window, value) in (event time, partition,
    row) order: what the single-process path's stable sort by event time lists first."""
    if examples.empty or keep == 0:
        return examples.iloc[:0]
    ordered = examples.sort_values([*_EXAMPLE_KEYS, "event_ns", "part", "row"], kind="stable")
    return ordered.groupby(_EXAMPLE_KEYS, sort=False).head(keep).reset_index(drop=True)


def segment_cells(
    rows: pd.DataFrame,
    config: MonitoringConfig,
    window: np.ndarray,
    flagged: np.ndarray,
    truth: np.ndarray,
    cost: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from mlgitops.monitoring.reference import segment_values

    counts, costs = [], []
    for column in config.segments:
        if column not in rows.columns:
            continue
        values = segment_values(rows[column])
        sums = {
            "rows": np.ones(len(rows)),
            "flagged": flagged.astype(np.int64),
            **_confusion_columns(flagged, truth),
        }
        cells = group_sums({"window": window, "value": values}, sums)
        counts.append(cells.assign(column=column))
        costs.append(exact_pieces({"window": window, "value": values}, cost).assign(column=column))
    return (
        _concat(counts, ["column", "window", "value", "rows", "flagged", *_OUTCOME_KEYS]),
        _concat(costs, ["column", "window", "value", "exponent", "p0", "p1", "p2"]),
    )


# Merging ------------------------------------------------------------------------------------


def merge(tallies: Iterable[Tally], example_ids: int) -> Tally:
    """One tally of all: integer sums, exact float pieces, the earliest examples."""
    tallies = list(tallies)
    out = Tally()
    others = [t.other for t in tallies if len(t.other)]
    if others:
        out.other = (
            pd.concat(others, ignore_index=True)
            .groupby("version", sort=True)
            .agg(rows=("rows", "sum"), first=("first", "min"), last=("last", "max"))
            .reset_index()
        )
    times = [t.last_logged_ns for t in tallies if t.last_logged_ns is not None]
    out.last_logged_ns = max(times) if times else None
    for logged in (True, False):
        parts = [t.subsets[logged] for t in tallies if logged in t.subsets]
        if parts:
            out.subsets[logged] = _merge_subsets(parts, example_ids)
    return out


def _merge_subsets(parts: list[Subset], example_ids: int) -> Subset:
    if len(parts) == 1:
        return parts[0]

    def both(name: str, keys: list[str]) -> pd.DataFrame:
        return _grouped(pd.concat([getattr(p, name) for p in parts], ignore_index=True), keys)

    return Subset(
        windows=both("windows", ["window"]),
        bins=both("bins", ["subject", "window", "bin"]),
        expected=both("expected", ["outcome", "window", "exponent"]),
        delays=both("delays", ["window", "delay_ns"]),
        unseen=both("unseen", ["subject", "window", "value"]),
        examples=_earliest(pd.concat([p.examples for p in parts], ignore_index=True), example_ids),
        segments=both("segments", ["column", "window", "value"]),
        segment_cost=both("segment_cost", ["column", "window", "value", "exponent"]),
    )
