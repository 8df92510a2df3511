"""`mlgitops monitor`: windows of logged predictions and labels against the release's reference.

Pure computation on a frame of predictions (see monitoring.logs) and a frame of labels; the CLI
reads the files and writes the JSON and HTML. Every count is over the profile's fixed bins
(mlgitops.profile), so a window's numbers equal what the generated Prometheus rules compute.

Per window: drift of each input feature and of the score (PSI against a sample-size-aware
threshold, JS distance, a KS or χ² test corrected across features, an effect size beside each
p-value), missing rates, new categories with counts and example ids, the flag rate, label
coverage and delay, realized precision/recall/FPR/FNR/cost with Wilson intervals against the
released values, label-free estimates (CBPE), CUSUM of the per-window cost, and the same
performance figures by declared segment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import stats
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
from mlgitops.monitoring.reference import (
    OUTCOMES,
    ScoreReference,
    expected_outcomes,
    rate,
    segment_values,
)
from mlgitops.profile import (
    UNSEEN_BIN,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
    bin_indices,
    bin_labels,
    reference_fractions,
)

AlertKind = Literal[
    "feature_drift",
    "score_drift",
    "missing_rate",
    "feature_missing",
    "feature_constant",
    "new_category",
    "score_collapse",
    "no_traffic",
    "expected_cost",
    "fpr_degraded",
    "fnr_degraded",
    "segment_fpr_degraded",
    "segment_fnr_degraded",
    "labels_late",
    "slow_decay",
]
SCORE_SUBJECT = "score"


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AlertKind
    window: str
    subject: str
    message: str
    value: float | None = None
    threshold: float | None = None


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


@dataclass(frozen=True)
class Windows:
    keys: list[str]
    starts: list[pd.Timestamp]
    ends: list[pd.Timestamp]
    index: np.ndarray  # window of each row
    gaps: list[Gap] = field(default_factory=list)


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
    freq, fmt = ("h", "%Y-%m-%dT%H") if config.window == "hour" else ("D", "%Y-%m-%d")
    step = pd.Timedelta(1, unit=freq)
    floors = event_time.floor(freq)
    present = floors.unique().sort_values()
    index = present.get_indexer(floors)
    starts = list(present)
    keys = [t.strftime(fmt) for t in starts]
    gaps = []
    for i in np.flatnonzero(np.asarray(present[1:] - present[:-1] > step)):
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
    return Windows(keys, starts, ends, index.astype(np.int64).reshape(-1), gaps)


def gap_alert(gap: Gap, config: MonitoringConfig) -> Alert:
    """One alert per gap: the empty windows between two windows with predictions."""
    unit = config.window
    span = gap.first if gap.windows == 1 else f"{gap.first}..{gap.last}"
    what = f"in this {unit}" if gap.windows == 1 else f"for {gap.windows} {unit}s"
    return Alert(
        kind="no_traffic",
        window=span,
        subject="traffic",
        message=f"{span}: no predictions {what} (a gap between {gap.after} and {gap.before})",
        value=0.0,
    )


def _counts(window: np.ndarray, bins: np.ndarray, n_windows: int, n_bins: int) -> np.ndarray:
    flat = np.bincount(window * n_bins + bins, minlength=n_windows * n_bins)
    return flat.reshape(n_windows, n_bins).astype("float64")


def _sums(window: np.ndarray, weights: np.ndarray, n_windows: int) -> np.ndarray:
    return np.bincount(window, weights=weights, minlength=n_windows)


def _num(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


@dataclass(frozen=True)
class _FeatureCounts:
    name: str
    spec: FeatureProfile
    labels: list[str]
    ref_counts: np.ndarray
    counts: np.ndarray  # windows x bins
    bins: np.ndarray  # bin of each row


def _feature_counts(
    name: str, spec: FeatureProfile, values: np.ndarray, windows: Windows
) -> _FeatureCounts:
    labels = bin_labels(spec)
    bins = bin_indices(spec, values)
    ref = reference_fractions(spec) * spec.count
    counts = _counts(windows.index, bins, len(windows.keys), len(labels))
    return _FeatureCounts(name, spec, labels, ref, counts, bins)


def _test(fc: _FeatureCounts, row: np.ndarray) -> tuple[str, stats.TestResult]:
    if isinstance(fc.spec, NumericProfile):
        # KS on the value bins; the missing share has its own check.
        return "ks", stats.ks_binned(fc.ref_counts[:-1], row[:-1])
    return "chi2", stats.chi2_homogeneity(fc.ref_counts, row)


def _drift_rows(
    families: list[_FeatureCounts], w: int, config: MonitoringConfig, alpha_each: float
) -> dict[str, dict[str, Any]]:
    """One window's drift figures for every feature (and the score), corrected together."""
    results: dict[str, dict[str, Any]] = {}
    p_values = []
    for fc in families:
        row = fc.counts[w]
        n = float(row.sum())
        dof = stats.psi_dof(fc.ref_counts)
        test_name, test = _test(fc, row)
        results[fc.name] = {
            "rows": n,
            "psi": stats.psi(fc.ref_counts, row),
            "psi_threshold": stats.psi_threshold(fc.spec.count, n, dof, alpha_each, config.min_psi),
            "js": stats.js_distance(fc.ref_counts, row),
            "test": test_name,
            "statistic": test.statistic,
            "p_value": test.p_value,
            "effect": test.effect,
            "effect_name": "ks_d" if test_name == "ks" else "cramers_v",
        }
        p_values.append(test.p_value)
    adjusted = stats.adjust(np.asarray(p_values), config.correction)
    for fc, p_adj in zip(families, adjusted, strict=True):
        result = results[fc.name]
        result["p_adjusted"] = float(p_adj)
        result["drift"] = int(
            result["rows"] >= config.min_rows
            and result["psi"] > result["psi_threshold"]
            and p_adj < config.false_alarm_rate
        )
    return results


def table_drift(
    predictions: pd.DataFrame,
    profile: ReferenceProfile,
    reference: ScoreReference,
    config: MonitoringConfig,
) -> dict[str, dict[str, Any]]:
    """Drift of the whole table (one window) for every feature and the score: what a
    dataset-drift report computes, on the profile's bins."""
    n = len(predictions)
    windows = Windows(["all"], [], [], np.zeros(n, dtype=np.int64))
    families = [
        _feature_counts(name, spec, predictions[name], windows)
        for name, spec in profile.features.items()
    ]
    families.append(
        _feature_counts(SCORE_SUBJECT, reference.score, predictions[SCORE].to_numpy(), windows)
    )
    return _drift_rows(families, 0, config, config.false_alarm_rate / len(families))


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.isf(1.0 - confidence))


@dataclass
class CheckResult:
    summary: dict[str, Any]
    alerts: list[Alert]

    @property
    def fired(self) -> bool:
        return bool(self.alerts)


def _realized_row_cost(reference: ScoreReference) -> tuple[float, float]:
    """Mean and standard deviation of one labelled row's realized cost on the test split."""
    counts = reference.realized
    n = sum(counts.values())
    c_fp, c_fn = reference.costs.false_positive, reference.costs.false_negative
    mean = (c_fp * counts["fp"] + c_fn * counts["fn"]) / n
    second = (c_fp**2 * counts["fp"] + c_fn**2 * counts["fn"]) / n
    return mean, math.sqrt(max(second - mean * mean, 1e-12))


def _confusion(flagged: np.ndarray, truth: np.ndarray, window: np.ndarray, n_windows: int):
    labelled = ~np.isnan(truth)
    positive = labelled & (truth == 1)
    negative = labelled & (truth == 0)
    return {
        "tp": _sums(window, (flagged & positive).astype(float), n_windows),
        "fp": _sums(window, (flagged & negative).astype(float), n_windows),
        "tn": _sums(window, (~flagged & negative).astype(float), n_windows),
        "fn": _sums(window, (~flagged & positive).astype(float), n_windows),
    }


def _realized_figures(
    c: dict[str, float], reference: ScoreReference, confidence: float
) -> dict[str, Any]:
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    n = tp + fp + tn + fn
    out: dict[str, Any] = {"labelled": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    for name, k, m in (
        ("precision", tp, tp + fp),
        ("recall", tp, tp + fn),
        ("fpr", fp, fp + tn),
        ("fnr", fn, fn + tp),
    ):
        low, high = stats.wilson(k, m, confidence)
        out[name] = rate(k, m)
        out[f"{name}_low"], out[f"{name}_high"] = (low, high) if m > 0 else (None, None)
    cost = reference.costs.false_positive * fp + reference.costs.false_negative * fn
    out["cost_per_1000"] = rate(1000.0 * cost, n)
    return out


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
    alerts: list[Alert] = []
    notes: list[str] = []
    conf = config.confidence
    labels_given = labels is not None
    if labels is None:
        labels = pd.DataFrame(
            {
                KEY: pd.Series([], dtype=object),
                REQUEST_KEY: pd.Series([], dtype=object),
                LABEL: pd.Series([], dtype="float64"),
                "label_time": pd.DatetimeIndex([], tz="UTC"),
            }
        )

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
    if as_of is None and len(predictions):
        as_of = predictions[TIME].max()
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
    n_rows = len(predictions)
    windows = assign_windows(pd.DatetimeIndex(predictions[EVENT_TIME]), config)
    alerts.extend(gap_alert(gap, config) for gap in windows.gaps)
    n_windows = len(windows.keys)
    w_index = windows.index

    progress(f"binning {n_rows} predictions over {n_windows} windows")
    families = [
        _feature_counts(name, spec, predictions[name], windows)
        for name, spec in profile.features.items()
    ]
    scores = predictions[SCORE].to_numpy(dtype="float64")
    score_family = _feature_counts(SCORE_SUBJECT, reference.score, scores, windows)
    alpha_each = config.false_alarm_rate / (len(families) + 1)
    feature_conf = 1.0 - config.false_alarm_rate / max(len(families), 1)

    truth, label_time = join_arrived_labels(predictions, labels, as_of)
    truth_values = truth
    delay_hours = ((label_time - predictions[TIME]).dt.total_seconds() / 3600.0).to_numpy(
        dtype="float64"
    )

    logged = predictions[LABEL].to_numpy(dtype="float64")
    flagged = np.where(np.isnan(logged), scores >= reference.threshold, logged == 1)
    expected = expected_outcomes(scores, reference.threshold, reference.calibration)
    expected_sums = {k: _sums(w_index, v, n_windows) for k, v in expected.items()}
    row_cost = (
        reference.costs.false_positive * expected["fp"]
        + reference.costs.false_negative * expected["fn"]
    )
    cost_sums = _sums(w_index, row_cost, n_windows)
    rows_per_window = np.bincount(w_index, minlength=n_windows).astype(float)
    flagged_sums = _sums(w_index, flagged.astype(float), n_windows)
    realized = _confusion(flagged, truth_values, w_index, n_windows)
    released_fpr_high, released_fnr_high = _released_highs(reference.realized, conf)
    real_mean, real_sd = _realized_row_cost(reference)
    z_conf = _z(conf)

    # New categories: the unseen rows only, grouped by window and raw value.
    new_categories: dict[int, dict[str, dict[str, Any]]] = {}
    ids = predictions[KEY].where(predictions[KEY].notna(), predictions[REQUEST_KEY])
    for fc in families:
        if not isinstance(fc.spec, CategoricalProfile):
            continue
        unseen = np.flatnonzero(fc.bins == fc.labels.index(UNSEEN_BIN))
        if unseen.size == 0:
            continue
        part = pd.DataFrame(
            {"w": w_index[unseen], "value": predictions[fc.name].to_numpy()[unseen]}
        ).assign(id=ids.to_numpy()[unseen])
        for (w, value), group in part.groupby(["w", "value"], sort=True):
            entry = new_categories.setdefault(int(w), {}).setdefault(fc.name, {})
            entry[str(value)] = {
                "count": len(group),
                "examples": [str(x) for x in group["id"].head(config.example_ids)],
            }

    segments = _segment_tables(
        predictions, config, w_index, n_windows, flagged, truth_values, row_cost
    )

    out_windows: dict[str, Any] = {}
    expected_z: list[float] = []
    realized_z: list[float] = []
    for w, key in enumerate(windows.keys):
        progress(f"window {key}")
        n = rows_per_window[w]
        record: dict[str, Any] = {
            "start": windows.starts[w].isoformat(),
            "end": windows.ends[w].isoformat(),
            "rows": n,
        }
        record["status"] = "ok" if n >= config.min_rows else "too_few_rows"
        drift = _drift_rows([*families, score_family], w, config, alpha_each)
        features_out: dict[str, Any] = {}
        for fc in families:
            figures = drift[fc.name]
            row = fc.counts[w]
            missing = row[-1]
            ref_missing = fc.spec.missing_rate
            low, high = stats.wilson(missing, n, feature_conf)
            figures.update(
                missing_rate=missing / n,
                missing_rate_low=low,
                missing_rate_high=high,
                reference_missing_rate=ref_missing,
            )
            if isinstance(fc.spec, CategoricalProfile):
                unseen_count = row[fc.labels.index(UNSEEN_BIN)]
                figures["unseen"] = unseen_count
                figures["unseen_share"] = unseen_count / n
                figures["new_categories"] = new_categories.get(w, {}).get(fc.name, {})
            features_out[fc.name] = figures
            alerts.extend(_feature_alerts(key, fc, figures, row, n, config))
        record["features"] = features_out
        score = drift[SCORE_SUBJECT]
        flag_rate = flagged_sums[w] / n
        low, high = stats.wilson(flagged_sums[w], n, conf)
        score.update(
            flag_rate=flag_rate,
            flag_rate_low=low,
            flag_rate_high=high,
            reference_flag_rate=reference.positive_rate,
        )
        record["score"] = score
        if score["drift"]:
            alerts.append(
                Alert(
                    kind="score_drift",
                    window=key,
                    subject=SCORE_SUBJECT,
                    message=f"{key}: score distribution drifted (PSI "
                    f"{score['psi']:.3f} > {score['psi_threshold']:.3f})",
                    value=score["psi"],
                    threshold=score["psi_threshold"],
                )
            )
        top_share = score_family.counts[w].max() / n
        if n >= config.min_rows and (flagged_sums[w] in (0, n) or top_share >= 0.99):
            alerts.append(
                Alert(
                    kind="score_collapse",
                    window=key,
                    subject=SCORE_SUBJECT,
                    message=f"{key}: scores collapsed (flag rate {flag_rate:.3%}, "
                    f"{top_share:.1%} of scores in one bin)",
                    value=flag_rate,
                    threshold=reference.positive_rate,
                )
            )

        # Label-free estimate (CBPE): expected confusion counts from the scores.
        e = {k: expected_sums[k][w] for k in OUTCOMES}
        cost_1000 = 1000.0 * cost_sums[w] / n
        # The reference mean is itself an estimate from n_ref test rows: both errors count.
        se = 1000.0 * reference.expected_cost_std * math.sqrt(1.0 / n + 1.0 / reference.n_rows)
        z_cost = (cost_1000 - reference.expected_cost_per_1000) / se
        record["estimated"] = {
            **{f"expected_{k}": v for k, v in e.items()},
            "fpr": rate(e["fp"], e["fp"] + e["tn"]),
            "fnr": rate(e["fn"], e["fn"] + e["tp"]),
            "precision": rate(e["tp"], e["tp"] + e["fp"]),
            "recall": rate(e["tp"], e["tp"] + e["fn"]),
            "cost_per_1000": cost_1000,
            "reference_cost_per_1000": reference.expected_cost_per_1000,
            "cost_z": z_cost,
        }
        limit = reference.expected_cost_per_1000 * (1.0 + config.min_cost_increase)
        if n >= config.min_rows and z_cost > z_conf and cost_1000 > limit:
            alerts.append(
                Alert(
                    kind="expected_cost",
                    window=key,
                    subject="expected_cost",
                    message=f"{key}: expected cost {cost_1000:.0f}/1000 above the "
                    f"reference {reference.expected_cost_per_1000:.0f} (z {z_cost:.1f})",
                    value=cost_1000,
                    threshold=limit,
                )
            )
        expected_z.append(z_cost if n >= config.min_rows else math.nan)

        # Realized performance from the labels that have arrived.
        c = {k: realized[k][w] for k in OUTCOMES}
        figures = _realized_figures(c, reference, conf)
        labelled = figures["labelled"]
        in_window = w_index == w
        delays = delay_hours[in_window & ~np.isnan(truth_values)]
        delays = delays[~np.isnan(delays)]
        figures.update(
            coverage=labelled / n,
            delay_hours_median=float(np.median(delays)) if delays.size else None,
            delay_hours_p90=float(np.quantile(delays, 0.9)) if delays.size else None,
            released_fpr=reference.released["fpr"],
            released_fnr=reference.released["fnr"],
            released_fpr_high=released_fpr_high,
            released_fnr_high=released_fnr_high,
            released_cost_per_1000=reference.released["expected_cost_per_1000"],
        )
        # Realized figures are judged only once the window's labels are due: a partly labelled
        # window holds the labels of its earlier hours, a biased sample (flag rates vary by hour).
        mature = as_of is not None and windows.ends[w] <= as_of - pd.Timedelta(
            hours=config.label_delay_hours
        )
        figures["mature"] = int(mature)
        record["realized"] = figures
        if mature and labelled >= config.min_labels:
            for name, high in (("fpr", released_fpr_high), ("fnr", released_fnr_high)):
                if _degraded(figures, name, high, reference.released[name], config):
                    alerts.append(
                        Alert(
                            kind=f"{name}_degraded",
                            window=key,
                            subject=name,
                            message=f"{key}: realized {name.upper()} "
                            f"{figures[name]:.3f} (Wilson low {figures[f'{name}_low']:.3f}) "
                            f"above the released {reference.released[name]:.3f} "
                            f"(high {high:.3f})",
                            value=figures[name],
                            threshold=high,
                        )
                    )
            cost_row = figures["cost_per_1000"] / 1000.0
            spread = real_sd * math.sqrt(1.0 / labelled + 1.0 / reference.n_rows)
            realized_z.append((cost_row - real_mean) / spread)
        else:
            realized_z.append(math.nan)
        late = labels_given and labelled / n < config.min_label_coverage
        if mature and n >= config.min_rows and late:
            alerts.append(
                Alert(
                    kind="labels_late",
                    window=key,
                    subject="labels",
                    message=f"{key}: {labelled / n:.0%} of predictions labelled "
                    f"{config.label_delay_hours:g} h after the window",
                    value=labelled / n,
                    threshold=config.min_label_coverage,
                )
            )
        if segments:
            record["segments"], seg_alerts = _segments(key, w, segments, reference, config)
            if mature:
                alerts.extend(seg_alerts)
        out_windows[key] = record

    # Gentle decay: CUSUM of the standardised per-window cost, label-free and realized. The
    # reference is itself an estimate, so a small fixed offset would accumulate forever: alarm
    # only when the pooled cost of the trailing windows also exceeds the reference materially.
    realized_cost = (
        reference.costs.false_positive * realized["fp"]
        + reference.costs.false_negative * realized["fn"]
    )
    labelled_rows = sum(realized[k] for k in OUTCOMES)
    streams = (
        ("expected_cost", expected_z, cost_sums, rows_per_window,
         reference.expected_cost_per_1000 / 1000.0, reference.expected_cost_std),
        ("realized_cost", realized_z, realized_cost, labelled_rows, real_mean, real_sd),
    )  # fmt: skip
    for stream, z, cost_total, count, base, sd in streams:
        levels = stats.cusum(np.asarray(z, dtype=float), config.cusum_k)
        for w, key in enumerate(windows.keys):
            first = max(0, w - config.slow_windows + 1)
            n_pooled = float(count[first : w + 1].sum())
            pooled = float(cost_total[first : w + 1].sum()) / n_pooled if n_pooled else math.nan
            spread = sd * math.sqrt(1.0 / max(n_pooled, 1.0) + 1.0 / reference.n_rows)
            pooled_z = (pooled - base) / spread if n_pooled else math.nan
            record = out_windows[key].setdefault("cusum", {})
            record[stream] = float(levels[w])
            record[f"{stream}_pooled_excess"] = pooled / base - 1.0 if base else math.nan
            record[f"{stream}_pooled_z"] = pooled_z
            material = n_pooled > 0 and pooled > base * (1.0 + config.slow_min_cost_increase)
            if levels[w] >= config.cusum_h and material and pooled_z > z_conf:
                alerts.append(
                    Alert(
                        kind="slow_decay",
                        window=key,
                        subject=stream,
                        message=f"{key}: CUSUM of {stream.replace('_', ' ')} "
                        f"{levels[w]:.1f} >= {config.cusum_h:g} and the last "
                        f"{w - first + 1} windows cost {pooled / base - 1.0:+.0%} vs the "
                        "reference (slow decay)",
                        value=float(levels[w]),
                        threshold=config.cusum_h,
                    )
                )

    if not labels_given:
        notes.append(
            "no label source given (--labels): label coverage and realized performance "
            "are not checked"
        )
    summary = {
        "model_version": model_version,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "rows": n_rows,
        "windows_total": n_windows,
        "window": config.window,
        "gaps": [
            {
                "first": gap.first,
                "last": gap.last,
                "start": gap.start.isoformat(),
                "end": gap.end.isoformat(),
                "windows": gap.windows,
                "after": gap.after,
                "before": gap.before,
            }
            for gap in windows.gaps
        ],
        "rows_without_event_time": without_event_time,
        "labels_given": labels_given,
        "notes": notes,
        "other_model_versions": other,
        "other_model_version_rows": int(sum(v["rows"] for v in other.values())),
        "labels_matched": int((~np.isnan(truth_values)).sum()),
        "label_coverage": float((~np.isnan(truth_values)).mean()) if n_rows else None,
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
    return CheckResult(summary=summary, alerts=alerts)


def _feature_alerts(
    key: str,
    fc: _FeatureCounts,
    f: dict[str, Any],
    row: np.ndarray,
    n: float,
    config: MonitoringConfig,
) -> list[Alert]:
    out = []
    name = fc.name
    if n < config.min_rows:
        return out
    if f["drift"]:
        out.append(
            Alert(
                kind="feature_drift",
                window=key,
                subject=name,
                message=f"{key}: {name} drifted (PSI {f['psi']:.3f} > "
                f"{f['psi_threshold']:.3f}, {f['test']} p_adj {f['p_adjusted']:.2g}, "
                f"{f['effect_name']} {f['effect']:.3f})",
                value=f["psi"],
                threshold=f["psi_threshold"],
            )
        )
    ref_missing = f["reference_missing_rate"]
    more_missing = f["missing_rate_low"] > ref_missing + config.min_missing_increase
    if more_missing and f["missing_rate"] >= config.broken_missing_rate:
        out.append(
            Alert(
                kind="feature_missing",
                window=key,
                subject=name,
                message=f"{key}: {name} is missing in {f['missing_rate']:.0%} of rows "
                f"(training {ref_missing:.1%}): broken feature?",
                value=f["missing_rate"],
                threshold=config.broken_missing_rate,
            )
        )
    elif more_missing:
        out.append(
            Alert(
                kind="missing_rate",
                window=key,
                subject=name,
                message=f"{key}: {name} missing rate {f['missing_rate']:.1%} "
                f"(training {ref_missing:.1%})",
                value=f["missing_rate"],
                threshold=ref_missing + config.min_missing_increase,
            )
        )
    present = row[:-1]
    ref_present = fc.ref_counts[:-1]
    ref_top = ref_present.max() / ref_present.sum() if ref_present.sum() else 1.0
    if present.sum() >= config.min_rows and (present > 0).sum() == 1 and ref_top < 0.9:
        value = fc.labels[int(np.argmax(present))]
        out.append(
            Alert(
                kind="feature_constant",
                window=key,
                subject=name,
                message=f"{key}: {name} is constant (every value in bin {value})",
                value=1.0,
                threshold=ref_top,
            )
        )
    if isinstance(fc.spec, CategoricalProfile):
        limit = fc.spec.truncated_fraction * (1 - fc.spec.missing_rate) + config.min_unseen_share
        if f["unseen"] >= config.min_unseen_count and f["unseen_share"] >= limit:
            top = sorted(f["new_categories"].items(), key=lambda kv: -kv[1]["count"])[:3]
            named = ", ".join(
                f"{v!r} ({e['count']}, e.g. {', '.join(e['examples'][:2])})" for v, e in top
            )
            out.append(
                Alert(
                    kind="new_category",
                    window=key,
                    subject=name,
                    message=f"{key}: {name} has {int(f['unseen'])} rows in unseen "
                    f"categories: {named}",
                    value=f["unseen_share"],
                    threshold=limit,
                )
            )
    return out


def _degraded(
    figures: dict[str, Any], name: str, high: float, released: float, config: MonitoringConfig
) -> bool:
    """Worse beyond both sampling errors (Wilson bounds) and by a material share."""
    low = figures[f"{name}_low"]
    limit = released * (1.0 + config.min_rate_increase)
    return low is not None and low > high and figures[name] > limit


def _released_rates(counts: dict[str, int]) -> dict[str, float]:
    return {
        "fpr": rate(counts["fp"], counts["fp"] + counts["tn"]),
        "fnr": rate(counts["fn"], counts["fn"] + counts["tp"]),
    }


def _released_highs(counts: dict[str, int], confidence: float) -> tuple[float, float]:
    """Upper Wilson bounds of the released FPR and FNR: the test split had sampling error too."""
    fpr_high = stats.wilson(counts["fp"], counts["fp"] + counts["tn"], confidence)[1]
    fnr_high = stats.wilson(counts["fn"], counts["fn"] + counts["tp"], confidence)[1]
    return fpr_high, fnr_high


def join_arrived_labels(
    predictions: pd.DataFrame, labels: pd.DataFrame, as_of: pd.Timestamp | None
) -> tuple[np.ndarray, pd.Series]:
    """Label (NaN: none) and label time of each prediction, from the labels arrived by `as_of`:
    by entity id first, then by request id and row; the latest label of a key wins."""
    if as_of is not None and len(labels):
        arrived = labels["label_time"].isna() | (labels["label_time"] <= as_of)
        labels = labels[arrived.to_numpy()]
    labels = labels.sort_values("label_time", kind="stable", na_position="first")
    by_id = labels.dropna(subset=[KEY]).drop_duplicates(KEY, keep="last").set_index(KEY)
    by_request = (
        labels.dropna(subset=[REQUEST_KEY])
        .drop_duplicates(REQUEST_KEY, keep="last")
        .set_index(REQUEST_KEY)
    )
    return _join_labels(predictions, by_id, by_request)


def _join_labels(
    predictions: pd.DataFrame, by_id: pd.DataFrame, by_request: pd.DataFrame
) -> tuple[np.ndarray, pd.Series]:
    """Label and label time of each prediction: by entity id, else by request id and row.

    Arrow's hash lookup (index_in) does the join; pandas' map is several times slower at 1M.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    truth = np.full(len(predictions), np.nan)
    times = np.full(len(predictions), np.datetime64("NaT"), dtype="datetime64[ns]")
    for keys, table in ((predictions[KEY], by_id), (predictions[REQUEST_KEY], by_request)):
        if not len(table):
            continue
        wanted = pa.array(keys, from_pandas=True)
        if not pa.types.is_string(wanted.type) and not pa.types.is_large_string(wanted.type):
            wanted = pa.array(keys.astype(object).to_numpy(), type=pa.string(), from_pandas=True)
        known = pa.array(table.index.astype(object).to_numpy(), type=pa.string())
        known = known.cast(wanted.type)
        position = pc.fill_null(pc.index_in(wanted, value_set=known), -1).to_numpy()
        hit = (position >= 0) & np.isnan(truth)
        truth[hit] = table[LABEL].to_numpy(dtype="float64")[position[hit]]
        label_times = table["label_time"].dt.tz_convert("UTC").dt.tz_localize(None)
        times[hit] = label_times.to_numpy(dtype="datetime64[ns]")[position[hit]]
    return truth, pd.Series(times).dt.tz_localize("UTC")


@dataclass(frozen=True)
class _SegmentTable:
    column: str
    values: list[str]
    sums: dict[str, np.ndarray]  # windows x values


def _segment_tables(
    predictions: pd.DataFrame,
    config: MonitoringConfig,
    window: np.ndarray,
    n_windows: int,
    flagged: np.ndarray,
    truth: np.ndarray,
    row_cost: np.ndarray,
) -> list[_SegmentTable]:
    """Per window and segment value: rows, flags, outcomes and expected cost, by one bincount
    each over (window, value) pairs."""
    out = []
    positive, negative = truth == 1, truth == 0
    for column in config.segments:
        if column not in predictions.columns:
            continue
        values = pd.Series(segment_values(predictions[column]))
        counts = values.value_counts(sort=False)
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        kept = [str(v) for v, _ in ordered[: config.max_segment_values]]
        code = pd.Index(kept).get_indexer(values).astype(np.int64)
        inside = code >= 0
        cell = window[inside] * len(kept) + code[inside]
        size = n_windows * len(kept)

        def count(weights: np.ndarray, cell=cell, inside=inside, size=size, k=len(kept)):
            flat = np.bincount(cell, weights=weights[inside].astype(float), minlength=size)
            return flat.reshape(n_windows, k)

        out.append(
            _SegmentTable(
                column,
                kept,
                {
                    "rows": count(np.ones(len(values))),
                    "flagged": count(flagged),
                    "cost": count(row_cost),
                    "tp": count(flagged & positive),
                    "fp": count(flagged & negative),
                    "tn": count(~flagged & negative),
                    "fn": count(~flagged & positive),
                },
            )
        )
    return out


def _segments(
    key: str,
    w: int,
    tables: list[_SegmentTable],
    reference: ScoreReference,
    config: MonitoringConfig,
) -> tuple[dict[str, Any], list[Alert]]:
    out: dict[str, Any] = {}
    alerts: list[Alert] = []
    for table in tables:
        released = reference.segments.get(table.column, {})
        # Bonferroni over the segment values: each is one more look.
        conf = 1.0 - (1.0 - config.confidence) / max(len(table.values), 1)
        for j, value in enumerate(table.values):
            n = table.sums["rows"][w, j]
            if n == 0:
                continue
            c = {k: float(table.sums[k][w, j]) for k in OUTCOMES}
            figures = _realized_figures(c, reference, conf)
            figures.update(
                rows=n,
                flag_rate=table.sums["flagged"][w, j] / n,
                estimated_cost_per_1000=1000.0 * table.sums["cost"][w, j] / n,
            )
            label = f"{table.column}={value}"
            out[label] = figures
            counts = released.get(value)
            if figures["labelled"] < config.min_labels or counts is None:
                continue
            highs = _released_highs(counts, conf)
            figures["released_fpr_high"], figures["released_fnr_high"] = highs
            released_rates = _released_rates(counts)
            for name, high in zip(("fpr", "fnr"), highs, strict=True):
                if _degraded(figures, name, high, released_rates[name], config):
                    alerts.append(
                        Alert(
                            kind=f"segment_{name}_degraded",
                            window=key,
                            subject=label,
                            message=f"{key}: {label}: realized "
                            f"{name.upper()} {figures[name]:.3f} (low "
                            f"{figures[f'{name}_low']:.3f}) above released high "
                            f"{high:.3f}",
                            value=figures[name],
                            threshold=high,
                        )
                    )
    return out, alerts


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
