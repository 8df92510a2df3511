"""`mlgitops monitor`: windows of logged predictions and labels against the release's reference.

Pure computation on a frame of predictions (see monitoring.logs) and a frame of labels; the
batch runner (monitoring.batch) reads the files and writes the JSON and HTML. This module
selects and windows the rows and joins the labels; each concern has its own module:
monitoring.windows (windows and gaps), monitoring.drift (input and score drift, missing rates,
new categories), monitoring.performance (realized and label-free performance, segments),
monitoring.decay (CUSUM of the per-window cost) and monitoring.alerts (what fires).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.config import MonitoringConfig
from mlgitops.logline import entity_keys
from mlgitops.monitoring import drift, performance
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
from mlgitops.monitoring.labeljoin import join_labels
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
from mlgitops.monitoring.reference import OUTCOMES, ScoreReference, expected_outcomes, row_costs
from mlgitops.monitoring.windows import Windows, assign_windows
from mlgitops.profile import ReferenceProfile
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
class _Selected:
    predictions: pd.DataFrame  # this model version's rows with a usable event time, in order
    other: dict[str, dict[str, Any]]  # rows, first and last event time of each other version
    without_event_time: int
    notes: list[str]
    last_logged: pd.Timestamp | None  # latest log time of this version's rows


def _no_labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            KEY: pd.Series([], dtype=object),
            REQUEST_KEY: pd.Series([], dtype=object),
            LABEL: pd.Series([], dtype="float64"),
            "label_time": pd.DatetimeIndex([], tz="UTC"),
        }
    )


def select_rows(predictions: pd.DataFrame, model_version: str | None) -> _Selected:
    """This model version's predictions, windowable by one clock, sorted by event time."""
    notes: list[str] = []
    # Predictions of another model version are counted, not mixed into this one's figures.
    versions = predictions[VERSION].fillna("(none)")
    other: dict[str, Any] = {}
    if model_version is not None:
        mine = (versions == model_version).to_numpy()
        for version, part in predictions[~mine].groupby(versions[~mine], sort=True):
            other[str(version)] = {
                "rows": len(part),
                "first": part[EVENT_TIME].min().isoformat(),
                "last": part[EVENT_TIME].max().isoformat(),
            }
        predictions = predictions[mine]
    last_logged = predictions[TIME].max() if len(predictions) else None
    # A line without its own event time is windowed by the service's log time only when no
    # line has one: mixing the two clocks would put it far from the traffic it belongs to
    # (replayed or delayed records), so it is left out and counted.
    without_event_time = 0
    if EVENT_TIME_LOGGED in predictions.columns:
        logged_time = predictions[EVENT_TIME_LOGGED].to_numpy(dtype=bool)
        if logged_time.any() and not logged_time.all():
            without_event_time = int((~logged_time).sum())
            predictions = predictions[logged_time]
            notes.append(
                f"{without_event_time} prediction{'s' if without_event_time != 1 else ''} "
                f"without an event time left out of the windows ({len(predictions)} have one)"
            )
        elif len(predictions) and not logged_time.any():
            notes.append("no prediction carries an event time: windows by the log time")
    if not predictions[EVENT_TIME].is_monotonic_increasing:  # logs are mostly in order already
        predictions = predictions.sort_values(EVENT_TIME, kind="stable")
    predictions = predictions.reset_index(drop=True)
    return _Selected(predictions, other, without_event_time, notes, last_logged)


@dataclass(frozen=True)
class _Tallies:
    """One check's per-row and per-window arrays, computed once for all windows."""

    windows: Windows
    families: list[drift.FeatureCounts]  # the input features
    score_family: drift.FeatureCounts
    rows: np.ndarray  # per window
    flagged: np.ndarray  # flagged rows per window
    expected: dict[str, np.ndarray]  # CBPE expected outcomes per window
    cost: np.ndarray  # expected cost per window
    realized: dict[str, np.ndarray]  # outcomes of the labelled rows per window
    labelled: np.ndarray  # per row: a label has arrived
    delay_hours: np.ndarray  # per row: prediction to label
    new_categories: dict[int, dict[str, dict[str, dict[str, Any]]]]
    segments: list[performance.SegmentTable]


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
    """`labels` None: no label source was given, which is a note, not late labels."""
    labels_given = labels is not None
    selected = select_rows(predictions, model_version)
    predictions, notes = selected.predictions, selected.notes
    if as_of is None:
        as_of = selected.last_logged
    n_rows = len(predictions)
    windows = assign_windows(pd.DatetimeIndex(predictions[EVENT_TIME]), config)
    alerts = [gap_alert(gap, config) for gap in windows.gaps]
    progress(f"binning {n_rows} predictions over {len(windows.keys)} windows")
    joined = join_labels(
        predictions,
        labels if labels is not None else _no_labels(),
        on_conflict="latest",
        as_of=as_of,
    )
    truth, label_time = joined.truth, joined.label_time
    tallies = _tally(predictions, truth, label_time, windows, profile, reference, config)
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
    figures = {
        "model_version": model_version,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "rows": n_rows,
        "windows_total": len(windows.keys),
        "window": config.window,
        "gaps": [gap.figures() for gap in windows.gaps],
        "rows_without_event_time": selected.without_event_time,
        "labels_given": labels_given,
        "notes": notes,
        "other_model_versions": selected.other,
        "other_model_version_rows": int(sum(v["rows"] for v in selected.other.values())),
        "labels_matched": int((~np.isnan(truth)).sum()),
        "label_coverage": float((~np.isnan(truth)).mean()) if n_rows else None,
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


def _tally(
    predictions: pd.DataFrame,
    truth: np.ndarray,
    label_time: pd.Series,
    windows: Windows,
    profile: ReferenceProfile,
    reference: ScoreReference,
    config: MonitoringConfig,
) -> _Tallies:
    """Bin every input, flag and cost every row, count every outcome: per window, at once."""
    w_index, n_windows = windows.index, len(windows.keys)
    families = [
        drift.feature_counts(name, spec, predictions[name], windows)
        for name, spec in profile.features.items()
    ]
    scores = predictions[SCORE].to_numpy(dtype="float64")
    score_family = drift.feature_counts(drift.SCORE_SUBJECT, reference.score, scores, windows)
    delay_hours = ((label_time - predictions[TIME]).dt.total_seconds() / 3600.0).to_numpy(
        dtype="float64"
    )
    logged = predictions[LABEL].to_numpy(dtype="float64")
    flagged = np.where(np.isnan(logged), scores >= reference.threshold, logged == 1)
    expected = expected_outcomes(scores, reference.threshold, reference.calibration)
    row_cost = row_costs(expected, reference.costs)
    ids = entity_keys(predictions[KEY], predictions[REQUEST_KEY])
    return _Tallies(
        windows=windows,
        families=families,
        score_family=score_family,
        rows=windows.rows(),
        flagged=windows.sums(flagged.astype(float)),
        expected={k: windows.sums(v) for k, v in expected.items()},
        cost=windows.sums(row_cost),
        realized=performance.confusion(flagged, truth, w_index, n_windows),
        labelled=~np.isnan(truth),
        delay_hours=delay_hours,
        new_categories=drift.new_categories(
            families, predictions, ids, w_index, config.example_ids
        ),
        segments=performance.segment_tables(
            predictions, config, w_index, n_windows, flagged, truth, row_cost
        ),
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
        **performance.label_delays(t.delay_hours, (t.windows.index == w) & t.labelled),
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
