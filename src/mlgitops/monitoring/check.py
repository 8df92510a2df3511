"""`mlgitops monitor`: windows of logged predictions and labels against the release's reference.

Rows are reduced to a mergeable tally (monitoring.tally: counts per window and bin, exact
sums, earliest example ids) block by block; this module plans the tally (the time of the
check, the labels arrived by then, the windowing), chooses the rows the windows hold and turns
the merged tally into figures and alerts. `check` does it for one in-memory frame (one
partition); monitoring.scan does it for partitioned logs as Dask tasks; both give the same
figures. Each concern has its own module: monitoring.windows (windows and gaps),
monitoring.drift (input and score drift, missing rates, new categories),
monitoring.performance (realized and label-free performance, segments), monitoring.decay
(CUSUM of the per-window cost) and monitoring.alerts (what fires).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import drift, performance
from mlgitops.monitoring import tally as tally_mod
from mlgitops.monitoring.alerts import (
    Alert,
    expected_cost_alert,
    feature_alerts,
    gap_alert,
    labels_late_alert,
    rate_alerts,
    score_alerts,
)
from mlgitops.monitoring.decay import CostStream, cusum_figures
from mlgitops.monitoring.labeljoin import LatestLabels
from mlgitops.monitoring.reference import OUTCOMES, ScoreReference, row_costs
from mlgitops.monitoring.windows import Windows, floor_windows
from mlgitops.profile import ReferenceProfile, bin_labels, reference_fractions
from mlgitops.stats import one_sided_z


@dataclass(frozen=True)
class CheckResult:
    """The check's figures (raw: numpy scalars, NaN, unrounded; monitoring.summary makes the
    file of them) and its alerts, in the order they are reported."""

    figures: dict[str, Any]
    alerts: list[Alert]

    @property
    def fired(self) -> bool:
        return bool(self.alerts)


@dataclass(frozen=True)
class Selected:
    """Which of this model version's rows the windows hold: those with their own event time
    (`logged` True), or, when no row has one, those windowed by the log time (False)."""

    logged: bool | None  # None: no row of this version
    without_event_time: int
    notes: list[str]


def select(rows_by_logged: dict[bool, int]) -> Selected:
    """A line without its own event time is windowed by the service's log time only when no
    line has one: mixing the two clocks would put it far from the traffic it belongs to
    (replayed or delayed records), so it is left out and counted."""
    with_time, without = rows_by_logged.get(True, 0), rows_by_logged.get(False, 0)
    if with_time and without:
        note = (
            f"{without} prediction{'s' if without != 1 else ''} "
            f"without an event time left out of the windows ({with_time} have one)"
        )
        return Selected(True, without, [note])
    if without:
        return Selected(False, 0, ["no prediction carries an event time: windows by the log time"])
    return Selected(True if with_time else None, 0, [])


def check(
    predictions: pd.DataFrame,
    labels: pd.DataFrame | None,
    profile: ReferenceProfile,
    reference: ScoreReference,
    config: MonitoringConfig,
    model_version: str | None,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> CheckResult:
    """The check of one frame of predictions: one partition of the partitioned path
    (monitoring.scan), so both give the same figures. `labels` None: no label source was
    given, which is a note, not late labels."""
    prescans = []
    if needs_prescan(config, labels is not None, as_of):
        rows_windows = config.window == "rows"
        prescans = [tally_mod.prescan_block(predictions, model_version, 0, 0, rows_windows)]
    plan, as_of = plan_check(prescans, labels, profile, reference, config, model_version, as_of)
    progress(f"binning {len(predictions)} predictions")
    tally = tally_mod.tally_block(predictions, plan, 0, 0)
    return finish(tally, plan, labels is not None, as_of, progress)


def needs_prescan(config: MonitoringConfig, labels_given: bool, as_of: pd.Timestamp | None) -> bool:
    """Whether a fact of all rows is needed before any is tallied: the last log time (the time
    of the check, by which labels count) or every event time (`rows` windows)."""
    return config.window == "rows" or (labels_given and as_of is None)


def plan_check(
    prescans: list[tally_mod.Prescan],
    labels: pd.DataFrame | None,
    profile: ReferenceProfile,
    reference: ScoreReference,
    config: MonitoringConfig,
    model_version: str | None,
    as_of: pd.Timestamp | None,
) -> tuple[tally_mod.TallyPlan, pd.Timestamp | None]:
    """The plan every block is tallied by, from the prescans of all partitions (in order):
    the time of the check (default: the last log time), the labels arrived by then and the
    windowing."""
    if as_of is None:
        times = [p.last_logged_ns for p in prescans if p.last_logged_ns is not None]
        as_of = pd.Timestamp(max(times), tz="UTC") if times else None
    window_of = tally_mod.floor_windows(config)
    boundaries = None
    if window_of is None:
        counts = {k: sum(len(p.times.get(k, ())) for p in prescans) for k in (True, False)}
        chosen = select({k: v for k, v in counts.items() if v}).logged
        boundaries = tally_mod.rows_boundaries(prescans, chosen, config.window_rows)
        window_of = tally_mod.rows_windows([b[0] for b in boundaries])
    latest = LatestLabels.of(labels, as_of) if labels is not None else None
    plan = tally_mod.TallyPlan(
        profile, reference, config, model_version, window_of, latest, boundaries
    )
    return plan, as_of


def finish(
    tally: tally_mod.Tally,
    plan: tally_mod.TallyPlan,
    labels_given: bool,
    as_of: pd.Timestamp | None,
    progress: Callable[[str], None] = lambda _: None,
) -> CheckResult:
    """The figures and alerts of a merged tally (`as_of` None: the last log time)."""
    config, reference, profile = plan.config, plan.reference, plan.profile
    if as_of is None and tally.last_logged_ns is not None:
        as_of = pd.Timestamp(tally.last_logged_ns, tz="UTC")
    selected = select({k: v.rows for k, v in tally.subsets.items()})
    notes = list(selected.notes)
    subset = tally.subsets.get(selected.logged) if selected.logged is not None else None
    tallies = _tallies(subset, plan)
    windows = tallies.windows
    n_rows = int(tallies.rows.sum())
    alerts = [gap_alert(gap, config) for gap in windows.gaps]
    z_conf = one_sided_z(config.confidence)

    out_windows: dict[str, Any] = {}
    expected_z: list[float] = []
    realized_z: list[float] = []
    for w, key in enumerate(windows.keys):
        progress(f"window {key}")
        n = tallies.rows[w]
        record: dict[str, Any] = {
            "start": windows.starts[w].isoformat(),
            "end": windows.ends[w].isoformat(),
            "rows": n,
            "status": "ok" if n >= config.min_rows else "too_few_rows",
        }
        alerts += _input_figures(record, tallies, w, key, reference, config)
        # Realized figures are judged only once the window's labels are due: a partly labelled
        # window holds the labels of its earlier hours, a biased sample (flag rates vary by hour).
        mature = as_of is not None and windows.ends[w] <= as_of - pd.Timedelta(
            hours=config.label_delay_hours
        )
        window_alerts, z_pair = _performance_figures(
            record, tallies, w, key, mature, labels_given, z_conf, reference, config
        )
        alerts += window_alerts
        expected_z.append(z_pair[0])
        realized_z.append(z_pair[1])
        out_windows[key] = record

    realized = tallies.realized
    realized_cost = row_costs(realized, reference.costs)
    real_mean, real_sd = performance.realized_row_cost(reference)
    streams = (
        CostStream("expected_cost", expected_z, tallies.cost, tallies.rows,
                   reference.expected_cost_per_1000 / 1000.0, reference.expected_cost_std),
        CostStream("realized_cost", realized_z, realized_cost,
                   sum(realized[k] for k in OUTCOMES), real_mean, real_sd),
    )  # fmt: skip
    cusum, decay_alerts = cusum_figures(streams, windows.keys, reference.n_rows, z_conf, config)
    for record, levels in zip(out_windows.values(), cusum, strict=True):
        record["cusum"] = levels
    alerts += decay_alerts

    if not labels_given:
        notes.append(
            "no label source given (--labels): label coverage and realized performance "
            "are not checked"
        )
    other = {
        str(row.version): {
            "rows": int(row.rows),
            "first": pd.Timestamp(int(row.first), tz="UTC").isoformat(),
            "last": pd.Timestamp(int(row.last), tz="UTC").isoformat(),
        }
        for row in tally.other.itertuples(index=False)
    }
    matched = int(tallies.labelled.sum())
    figures = {
        "model_version": plan.model_version,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "rows": n_rows,
        "windows_total": len(windows.keys),
        "window": config.window,
        "gaps": [gap.figures() for gap in windows.gaps],
        "rows_without_event_time": selected.without_event_time,
        "labels_given": labels_given,
        "notes": notes,
        "other_model_versions": other,
        "other_model_version_rows": int(sum(v["rows"] for v in other.values())),
        "labels_matched": matched,
        "label_coverage": matched / n_rows if n_rows else None,
        "windows": out_windows,
        "reference": {
            "profile_rows": profile.n_rows,
            "threshold": reference.threshold,
            "flag_rate": reference.positive_rate,
            "expected_cost_per_1000": reference.expected_cost_per_1000,
            "released": reference.released,
            "false_alarm_rate": config.false_alarm_rate,
            "correction": config.correction,
        },
    }
    return CheckResult(figures=figures, alerts=alerts)


@dataclass(frozen=True)
class _Tallies:
    """One check's per-window arrays (and per-window lists), from the merged tally."""

    windows: Windows
    families: list[drift.FeatureCounts]  # the input features
    score_family: drift.FeatureCounts
    rows: np.ndarray  # per window
    flagged: np.ndarray  # flagged rows per window
    expected: dict[str, np.ndarray]  # CBPE expected outcomes per window
    cost: np.ndarray  # expected cost per window
    realized: dict[str, np.ndarray]  # outcomes of the labelled rows per window
    labelled: np.ndarray  # labelled rows per window
    delay_hours: list[np.ndarray]  # per window: prediction to label of its labelled rows
    new_categories: dict[int, dict[str, dict[str, dict[str, Any]]]]
    segments: list[performance.SegmentTable]


def _tallies(subset: tally_mod.Subset | None, plan: tally_mod.TallyPlan) -> _Tallies:
    config = plan.config
    if subset is None:
        keys = np.zeros(0, dtype=np.int64)
    else:
        keys = subset.windows["window"].to_numpy(dtype=np.int64)
    n_windows = len(keys)
    if plan.boundaries is not None:
        starts = [pd.Timestamp(plan.boundaries[int(k)][0][0], tz="UTC") for k in keys]
        ends = [pd.Timestamp(plan.boundaries[int(k)][1], tz="UTC") for k in keys]
        windows = Windows([f"rows-{int(k):06d}" for k in keys], starts, ends, keys)
    else:
        windows = floor_windows([pd.Timestamp(int(k), tz="UTC") for k in keys], config)

    def per_window(table: pd.DataFrame, column: str) -> np.ndarray:
        out = np.zeros(n_windows)
        if len(table):
            position = np.searchsorted(keys, table["window"].to_numpy(dtype=np.int64))
            np.add.at(out, position, table[column].to_numpy(dtype="float64"))
        return out

    def sums(table: pd.DataFrame) -> np.ndarray:
        totals = tally_mod.exact_totals(table, ["window"])
        return np.asarray([totals.get((int(k),), 0.0) for k in keys], dtype="float64")

    empty = subset is None
    windows_table = subset.windows if not empty else pd.DataFrame({"window": []})
    families = []
    for i, (name, spec) in enumerate(plan.subjects):
        labels = bin_labels(spec)
        counts = np.zeros((n_windows, len(labels)))
        if not empty:
            cells = subset.bins[subset.bins["subject"] == i]
            position = np.searchsorted(keys, cells["window"].to_numpy(dtype=np.int64))
            np.add.at(
                counts,
                (position, cells["bin"].to_numpy(dtype=np.int64)),
                cells["rows"].to_numpy(dtype="float64"),
            )
        ref = reference_fractions(spec) * spec.count
        families.append(drift.FeatureCounts(name, spec, labels, ref, counts, np.zeros(0)))
    expected: dict[str, np.ndarray] = {}
    cost = np.zeros(n_windows)
    if not empty:
        for outcome, part in subset.expected.groupby("outcome", sort=True):
            (expected if outcome != "cost" else {})[outcome] = sums(part)
            if outcome == "cost":
                cost = sums(part)
    expected = {k: expected.get(k, np.zeros(n_windows)) for k in OUTCOMES}
    delay_hours: list[np.ndarray] = [np.zeros(0) for _ in range(n_windows)]
    if not empty and len(subset.delays):
        position = np.searchsorted(keys, subset.delays["window"].to_numpy(dtype=np.int64))
        hours = (
            pd.to_timedelta(subset.delays["delay_ns"].to_numpy(dtype=np.int64), unit="ns")
            .total_seconds()
            .to_numpy()
            / 3600.0
        )
        counts = subset.delays["rows"].to_numpy(dtype=np.int64)
        for w in range(n_windows):
            here = position == w
            delay_hours[w] = np.repeat(hours[here], counts[here])
    return _Tallies(
        windows=windows,
        families=families[:-1],
        score_family=families[-1],
        rows=per_window(windows_table, "rows") if not empty else np.zeros(0),
        flagged=per_window(windows_table, "flagged") if not empty else np.zeros(0),
        expected=expected,
        cost=cost,
        realized={k: per_window(windows_table, k) if not empty else np.zeros(0) for k in OUTCOMES},
        labelled=per_window(windows_table, "labelled") if not empty else np.zeros(0),
        delay_hours=delay_hours,
        new_categories=drift.new_categories(
            subset.unseen, subset.examples, [n for n, _ in plan.subjects], keys
        )
        if not empty
        else {},
        segments=performance.segment_tables(subset.segments, subset.segment_cost, config, keys)
        if not empty
        else [],
    )


def _input_figures(
    record: dict[str, Any],
    t: _Tallies,
    w: int,
    key: str,
    reference: ScoreReference,
    config: MonitoringConfig,
) -> list[Alert]:
    """Window `w`'s figures of every input and of the score, into `record`; their alerts."""
    alerts: list[Alert] = []
    n = t.rows[w]
    alpha_each = config.false_alarm_rate / (len(t.families) + 1)
    feature_conf = 1.0 - config.false_alarm_rate / max(len(t.families), 1)
    figures_of = drift.drift_rows([*t.families, t.score_family], w, config, alpha_each)
    features_out: dict[str, Any] = {}
    for fc in t.families:
        figures = figures_of[fc.name]
        row = fc.counts[w]
        window_new = t.new_categories.get(w, {}).get(fc.name, {})
        drift.add_missing_and_unseen(figures, fc, row, n, feature_conf, window_new)
        features_out[fc.name] = figures
        alerts.extend(feature_alerts(key, fc, figures, row, n, config))
    record["features"] = features_out
    score = figures_of[drift.SCORE_SUBJECT]
    drift.add_flag_rate(score, t.flagged[w], n, config.confidence, reference.positive_rate)
    record["score"] = score
    top_share = t.score_family.counts[w].max() / n
    alerts += score_alerts(key, score, top_share, t.flagged[w], n, reference.positive_rate, config)
    return alerts


def _performance_figures(
    record: dict[str, Any],
    t: _Tallies,
    w: int,
    key: str,
    mature: bool,
    labels_given: bool,
    z_conf: float,
    reference: ScoreReference,
    config: MonitoringConfig,
) -> tuple[list[Alert], tuple[float, float]]:
    """Window `w`'s label-free and realized figures (and by segment), into `record`; their
    alerts and the window's standardised expected and realized cost (NaN: not judged)."""
    alerts: list[Alert] = []
    conf = config.confidence
    n = t.rows[w]
    # Label-free estimate (CBPE): expected confusion counts from the scores.
    e = {k: t.expected[k][w] for k in OUTCOMES}
    estimated = performance.estimated_figures(e, t.cost[w], n, reference)
    record["estimated"] = estimated
    if alert := expected_cost_alert(key, estimated, n, z_conf, config):
        alerts.append(alert)
    expected_z = estimated["cost_z"] if n >= config.min_rows else math.nan

    # Realized performance from the labels that have arrived.
    released_highs = performance.released_highs(reference.realized, conf)
    figures = performance.realized_figures({k: t.realized[k][w] for k in OUTCOMES}, reference, conf)
    labelled = figures["labelled"]
    figures.update(
        coverage=labelled / n,
        **performance.label_delays(t.delay_hours[w], np.ones(t.delay_hours[w].size, bool)),
        released_fpr=reference.released["fpr"],
        released_fnr=reference.released["fnr"],
        released_fpr_high=released_highs[0],
        released_fnr_high=released_highs[1],
        released_cost_per_1000=reference.released["expected_cost_per_1000"],
    )
    figures["mature"] = int(mature)
    record["realized"] = figures
    realized_z = math.nan
    if mature and labelled >= config.min_labels:
        alerts += rate_alerts(key, figures, reference.released, released_highs, config)
        real_mean, real_sd = performance.realized_row_cost(reference)
        realized_z = performance.realized_cost_z(figures, real_mean, real_sd, reference.n_rows)
    if alert := labels_late_alert(key, labelled, n, mature, labels_given, config):
        alerts.append(alert)
    if t.segments:
        record["segments"], segment_alerts = performance.segments(
            key, w, t.segments, reference, config
        )
        if mature:
            alerts += segment_alerts
    return alerts, (expected_z, realized_z)
