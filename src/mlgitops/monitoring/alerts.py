"""The alerts of `mlgitops monitor`: which figures fire, and the one line each alert says.

The figures come from monitoring.drift, monitoring.performance and monitoring.decay; this
module only judges them against the configured limits and words the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlgitops.config import MonitoringConfig
from mlgitops.model_base import FrozenModel
from mlgitops.profile import CategoricalProfile

if TYPE_CHECKING:
    from mlgitops.monitoring.drift import FeatureCounts
    from mlgitops.monitoring.windows import Gap

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
# A figure as the summary file holds it: a whole number is written (and read back) as an int.
Number = int | float


class Alert(FrozenModel):
    kind: AlertKind
    window: str
    subject: str
    message: str
    value: Number | None = None
    threshold: Number | None = None


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


def feature_alerts(
    key: str,
    fc: FeatureCounts,
    f: dict[str, Any],
    row: np.ndarray,
    n: float,
    config: MonitoringConfig,
) -> list[Alert]:
    """Drift, a missing rate above training's (or a broken feature), a constant feature, new
    categories: one window's alerts for one input feature."""
    out: list[Alert] = []
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


def score_alerts(
    key: str,
    score: dict[str, Any],
    top_share: float,
    flagged: float,
    n: float,
    reference_flag_rate: float,
    config: MonitoringConfig,
) -> list[Alert]:
    """The score's drift, and a collapse: every row flagged or none, or nearly all scores in
    one bin."""
    out = []
    if score["drift"]:
        out.append(
            Alert(
                kind="score_drift",
                window=key,
                subject="score",
                message=f"{key}: score distribution drifted (PSI "
                f"{score['psi']:.3f} > {score['psi_threshold']:.3f})",
                value=score["psi"],
                threshold=score["psi_threshold"],
            )
        )
    if n >= config.min_rows and (flagged in (0, n) or top_share >= 0.99):
        flag_rate = score["flag_rate"]
        out.append(
            Alert(
                kind="score_collapse",
                window=key,
                subject="score",
                message=f"{key}: scores collapsed (flag rate {flag_rate:.3%}, "
                f"{top_share:.1%} of scores in one bin)",
                value=flag_rate,
                threshold=reference_flag_rate,
            )
        )
    return out


def expected_cost_alert(
    key: str,
    estimated: dict[str, Any],
    n: float,
    z_conf: float,
    config: MonitoringConfig,
) -> Alert | None:
    """The label-free expected cost above the reference, beyond sampling error and materially."""
    cost_1000, reference_cost = estimated["cost_per_1000"], estimated["reference_cost_per_1000"]
    limit = reference_cost * (1.0 + config.min_cost_increase)
    if n >= config.min_rows and estimated["cost_z"] > z_conf and cost_1000 > limit:
        return Alert(
            kind="expected_cost",
            window=key,
            subject="expected_cost",
            message=f"{key}: expected cost {cost_1000:.0f}/1000 above the "
            f"reference {reference_cost:.0f} (z {estimated['cost_z']:.1f})",
            value=cost_1000,
            threshold=limit,
        )
    return None


def degraded(
    figures: dict[str, Any], name: str, high: float, released: float, config: MonitoringConfig
) -> bool:
    """Worse beyond both sampling errors (Wilson bounds) and by a material share."""
    low = figures[f"{name}_low"]
    limit = released * (1.0 + config.min_rate_increase)
    return low is not None and low > high and figures[name] > limit


def rate_alerts(
    key: str,
    figures: dict[str, Any],
    released: dict[str, float],
    highs: tuple[float, float],
    config: MonitoringConfig,
    segment: str | None = None,
) -> list[Alert]:
    """Realized FPR or FNR of a window (or of one `segment` of it, "column=value") above the
    released one, both intervals apart."""
    out = []
    for name, high in zip(("fpr", "fnr"), highs, strict=True):
        if not degraded(figures, name, high, released[name], config):
            continue
        value, low = figures[name], figures[f"{name}_low"]
        if segment is None:
            kind, subject = f"{name}_degraded", name
            message = (
                f"{key}: realized {name.upper()} {value:.3f} (Wilson low {low:.3f}) above the "
                f"released {released[name]:.3f} (high {high:.3f})"
            )
        else:
            kind, subject = f"segment_{name}_degraded", segment
            message = (
                f"{key}: {segment}: realized {name.upper()} {value:.3f} (low {low:.3f}) above "
                f"released high {high:.3f}"
            )
        out.append(
            Alert(
                kind=kind, window=key, subject=subject, message=message, value=value, threshold=high
            )
        )
    return out


def labels_late_alert(
    key: str, labelled: float, n: float, mature: bool, labels_given: bool, config: MonitoringConfig
) -> Alert | None:
    """Too few labels once a window's labels are due (only when a label source was given)."""
    late = labels_given and labelled / n < config.min_label_coverage
    if mature and n >= config.min_rows and late:
        return Alert(
            kind="labels_late",
            window=key,
            subject="labels",
            message=f"{key}: {labelled / n:.0%} of predictions labelled "
            f"{config.label_delay_hours:g} h after the window",
            value=labelled / n,
            threshold=config.min_label_coverage,
        )
    return None


def slow_decay_alert(
    key: str, stream: str, level: float, windows: int, excess: float, config: MonitoringConfig
) -> Alert:
    return Alert(
        kind="slow_decay",
        window=key,
        subject=stream,
        message=f"{key}: CUSUM of {stream.replace('_', ' ')} "
        f"{level:.1f} >= {config.cusum_h:g} and the last "
        f"{windows} windows cost {excess:+.0%} vs the "
        "reference (slow decay)",
        value=level,
        threshold=config.cusum_h,
    )
