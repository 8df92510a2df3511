"""Prometheus rules from the reference: the same checks as `mlgitops monitor`, in PromQL.

Reference fractions become constant recording rules (`mlgitops_reference:*`), so PSI over any
window is one vector expression over the service's bin counters (see metric_names), and the
sample-size-aware threshold (1/N_ref + 1/N)·χ²_{1−α}(B−1) is computed from the window's own
count. Pure: dicts in, dicts out; the `rules` stage writes them.

Every aggregation keeps the served series' `bento_tag` (metric_names.RELEASE_LABEL): each
release is judged on its own traffic, so while two releases serve side by side in a rollout
each alerts on its own, and every alert names the release it is about (the receiver of
`mlgitops revert serve` acts only on the release its base branch pins). The constants carry no
tag (this file ships in the bento whose version hashes it), so they join the series with
`on (feature, bin) group_left`. Bins absent from a release's counters count as nothing: the
service creates each bin of its own profile at 0 on start (metric_names), so the release these
rules belong to has them all.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import drift_stats
from mlgitops.monitoring import metric_names as m
from mlgitops.monitoring.reference import ScoreReference
from mlgitops.profile import (
    MISSING_BIN,
    UNSEEN_BIN,
    CategoricalProfile,
    FeatureProfile,
    ReferenceProfile,
    bin_labels,
    reference_fractions,
)
from mlgitops.stats import one_sided_z, wilson

# The score's bins live in the same recording rules as the features, under this name.
SCORE_FEATURE = "__score__"
LABELLED_WINDOWS = ("1d", "7d")  # realized performance: labels trickle in, windows are longer
REF = "mlgitops_reference"
R = m.RELEASE_LABEL


def _c(value: float) -> str:
    """A constant as PromQL text, stable across runs (10 significant digits)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{float(f'{value:.10g}')!r}"


def _const(record: str, value: float, **labels: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": f"{REF}:{record}", "expr": f"vector({_c(value)})"}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def _smoothed(fractions: list[float], n_ref: float) -> list[float]:
    k = len(fractions)
    return [
        (f * n_ref + drift_stats.SMOOTHING) / (n_ref + drift_stats.SMOOTHING * k) for f in fractions
    ]


def _reference_rules(
    profile: ReferenceProfile, score: ScoreReference, config: MonitoringConfig
) -> list[dict[str, Any]]:
    rules = []
    entries: list[tuple[str, FeatureProfile]] = [*profile.features.items()]
    entries.append((SCORE_FEATURE, score.score))
    alpha_each = config.false_alarm_rate / len(entries)
    for name, spec in entries:
        labels = bin_labels(spec)
        fractions = [float(f) for f in reference_fractions(spec)]
        n_ref = float(spec.count)
        for label, fraction, smooth in zip(
            labels, fractions, _smoothed(fractions, n_ref), strict=True
        ):
            rules.append(_const("feature_bin_fraction", fraction, feature=name, bin=label))
            rules.append(_const("feature_bin_smoothed", smooth, feature=name, bin=label))
        dof = max(sum(1 for f in fractions if f > 0) - 1, 1)
        rules.append(_const("feature_rows", n_ref, feature=name))
        chi2 = drift_stats.chi2_quantile(alpha_each, dof)
        rules.append(_const("feature_psi_chi2", chi2, feature=name))
        present = fractions[:-1]
        top = max(present) / sum(present) if sum(present) > 0 else 1.0
        rules.append(_const("feature_top_fraction", top, feature=name))
        ref_missing = spec.missing_rate
        spread = 3.0 * math.sqrt(ref_missing * (1 - ref_missing) / config.min_rows)
        limit = max(config.broken_missing_rate, ref_missing + config.min_missing_increase + spread)
        rules.append(_const("feature_missing_limit", min(limit, 1.0), feature=name))
        if isinstance(spec, CategoricalProfile):
            unseen = spec.truncated_fraction * (1 - spec.missing_rate) + config.min_unseen_share
            rules.append(_const("feature_unseen_limit", unseen, feature=name))
    return rules


def _window_rules(window: str) -> list[dict[str, Any]]:
    inc = f"mlgitops:feature_bin:increase{window}"
    rows = f"mlgitops:feature_rows:increase{window}"
    share = f"mlgitops:feature_bin_share:{window}"
    fb = f"{REF}:feature_bin_fraction"
    sm = f"{REF}:feature_bin_smoothed"
    outcome = f"mlgitops:expected_outcome:increase{window}"
    predictions = f"sum by ({R}) (increase({m.PREDICTIONS_TOTAL}[{window}]))"
    return [
        {
            "record": inc,
            "expr": f"sum by ({R}, feature, bin) (increase({m.FEATURE_BIN_TOTAL}[{window}]))"
            f" or label_replace(sum by ({R}, bin) (increase({m.SCORE_BIN_TOTAL}[{window}])),"
            f' "feature", "{SCORE_FEATURE}", "", "")',
        },
        {"record": rows, "expr": f"sum by ({R}, feature) ({inc})"},
        {
            "record": share,
            "expr": f"({inc} + {drift_stats.SMOOTHING}) / on ({R}, feature) group_left ()"
            f" ({rows} + on (feature) group_left ()"
            f" ({drift_stats.SMOOTHING} * count by (feature) ({fb})))",
        },
        {
            "record": f"mlgitops:feature_psi:{window}",
            # Bins empty on both sides drop out, as in monitoring.drift_stats.psi.
            "expr": f"sum by ({R}, feature) ((({share} - on (feature, bin) group_left () {sm})"
            f" * ln({share} / on (feature, bin) group_left () {sm}))"
            f" unless on ({R}, feature, bin) ({inc} == 0 and on (feature, bin) {fb} == 0))",
        },
        {
            "record": f"mlgitops:feature_psi_threshold:{window}",
            "expr": f"((1 / {REF}:feature_rows) + on (feature) group_right () (1 / {rows}))"
            f" * on (feature) group_left () {REF}:feature_psi_chi2",
        },
        {
            "record": f"mlgitops:flag_share:{window}",
            # No flagged series of a release counts as none flagged, not as no release.
            "expr": f'(sum by ({R}) (increase({m.PREDICTIONS_TOTAL}{{label="1"}}[{window}]))'
            f" or ({predictions} * 0)) / {predictions}",
        },
        {
            "record": outcome,
            "expr": f"sum by ({R}, outcome) (increase({m.EXPECTED_OUTCOME_TOTAL}[{window}]))",
        },
        {"record": f"mlgitops:expected_rows:{window}", "expr": f"sum by ({R}) ({outcome})"},
    ]


def _labelled_rules(window: str) -> list[dict[str, Any]]:
    inc = f"mlgitops:labelled_outcome:increase{window}"

    def get(o: str) -> str:
        return f'(sum by ({R}) ({inc}{{outcome="{o}"}}) or (sum by ({R}) ({inc}) * 0))'

    return [
        {
            "record": inc,
            "expr": f"sum by ({R}, outcome) (increase({m.LABELLED_OUTCOME_TOTAL}[{window}]))",
        },
        {"record": f"mlgitops:labelled_rows:{window}", "expr": f"sum by ({R}) ({inc})"},
        {"record": f"mlgitops:labelled_negatives:{window}", "expr": f"{get('fp')} + {get('tn')}"},
        {"record": f"mlgitops:labelled_positives:{window}", "expr": f"{get('fn')} + {get('tp')}"},
        {
            "record": f"mlgitops:labelled_fpr:{window}",
            "expr": f"{get('fp')} / mlgitops:labelled_negatives:{window}",
        },
        {
            "record": f"mlgitops:labelled_fnr:{window}",
            "expr": f"{get('fn')} / mlgitops:labelled_positives:{window}",
        },
    ]


def _wilson_low(p: str, n: str, z: float) -> str:
    z2 = _c(z * z)
    return (
        f"(({p} + {z2} / (2 * {n}) - {_c(z)} * sqrt({p} * (1 - {p}) / {n}"
        f" + {z2} / (4 * {n} * {n}))) / (1 + {z2} / {n}))"
    )


# The alert's own release (its bento_tag label), looked up in the info series it exports.
MODEL_TEMPLATE = (
    '{{ with printf "max by (bento_tag, model_hash, data_hash, git_commit) '
    '(mlgitops_model_info{bento_tag=%q})" $labels.bento_tag | query }}'
    "{{ with first . }}Model {{ .Labels.bento_tag }} (model {{ .Labels.model_hash }}, data "
    "{{ .Labels.data_hash }}) from commit {{ .Labels.git_commit }}. Roll back: mlgitops revert "
    "(a branch restoring the last release before it)"
    "{{ end }}{{ else }}Model {{ $labels.bento_tag }} (mlgitops_model_info is not exported)."
    "{{ end }}"
)


def _alert(
    name: str,
    expr: str,
    summary: str,
    description: str,
    severity: str,
    config: MonitoringConfig,
    for_: str = "15m",
    **labels: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **config.rules.alert_labels, **labels},
        "annotations": {
            "summary": summary,
            "description": f"{description} {MODEL_TEMPLATE}",
            "runbook_url": config.rules.runbook_url,
        },
    }


def _alerts(reference: ScoreReference, config: MonitoringConfig) -> list[dict[str, Any]]:
    rows_min = config.min_rows
    z = one_sided_z(config.confidence)
    out = []
    for window, severity, wait in (("1h", "warning", "15m"), ("1d", "ticket", "1h")):
        speed = "fast" if window == "1h" else "slow"
        psi = f"mlgitops:feature_psi:{window}"
        thr = f"clamp_min(mlgitops:feature_psi_threshold:{window}, {_c(config.min_psi)})"
        rows = f"mlgitops:feature_rows:increase{window}"
        for subject, selector, alert in (
            ("feature", f'{{feature!="{SCORE_FEATURE}"}}', "FeatureDrift"),
            ("score", f'{{feature="{SCORE_FEATURE}"}}', "ScoreDrift"),
        ):
            what = "{{ $labels.feature }}" if subject == "feature" else "the score"
            out.append(
                _alert(
                    f"{alert}{speed.capitalize()}",
                    f"({psi}{selector} > on ({R}, feature) {thr})"
                    f" and on ({R}, feature) ({rows} >= {rows_min})",
                    f"Drift of {what} over {window}",
                    f"PSI of {what} over the last {window} is above its sample-size-aware "
                    "threshold (false-alarm budget "
                    f"{config.false_alarm_rate:g} per window, minimum PSI {config.min_psi:g}); "
                    "`mlgitops monitor` on the prediction log names the values that moved.",
                    severity,
                    config,
                    wait,
                    window=window,
                )
            )
        cost = f"mlgitops:expected_cost_per_1000:{window}"
        n = f"mlgitops:expected_rows:{window}"
        increase = config.min_cost_increase if window == "1h" else config.slow_min_cost_increase
        ref_cost = reference.expected_cost_per_1000
        se = 1000.0 * reference.expected_cost_std
        out.append(
            _alert(
                f"ExpectedCostHigh{speed.capitalize()}",
                f"({cost} > {_c(ref_cost * (1 + increase))})"
                f" and ({cost} > {_c(ref_cost)} + {_c(z * se)}"
                f" * sqrt(1 / {n} + {_c(1.0 / reference.n_rows)}))"
                f" and ({n} >= {rows_min})",
                f"Expected cost per 1,000 above the release over {window}",
                f"Label-free (CBPE) expected cost per 1,000 predictions over {window} is more "
                f"than {increase:.0%} and {z:.2f} standard errors above the reference "
                f"{ref_cost:.0f} {reference.costs.currency}.",
                "critical" if window == "1h" else "warning",
                config,
                wait,
                window=window,
            )
        )
        for rate_name, num, den, ref_rate in (
            ("Fpr", "fp", ("fp", "tn"), reference.estimated_fpr),
            ("Fnr", "fn", ("fn", "tp"), reference.estimated_fnr),
        ):
            o = f"mlgitops:expected_outcome:increase{window}"
            denominator = f'(sum by ({R}) ({o}{{outcome=~"{den[0]}|{den[1]}"}}))'
            est = f'(sum by ({R}) ({o}{{outcome="{num}"}}) / {denominator})'
            limit = ref_rate * (1 + config.min_rate_increase)
            spread = f"{_c(z * math.sqrt(ref_rate * (1 - ref_rate)))} / sqrt({denominator})"
            out.append(
                _alert(
                    f"Estimated{rate_name}High{speed.capitalize()}",
                    f"({est} > {_c(limit)}) and ({est} > {_c(ref_rate)} + {spread})"
                    f" and ({n} >= {rows_min})",
                    f"Estimated {rate_name.upper()} above the release over {window}",
                    f"Label-free estimate of the {rate_name.upper()} over {window} is above the "
                    f"reference {ref_rate:.3f} by more than {config.min_rate_increase:.0%} and "
                    "its sampling error.",
                    "warning",
                    config,
                    wait,
                    window=window,
                )
            )
    rows = "mlgitops:feature_rows:increase1h"
    inc = "mlgitops:feature_bin:increase1h"
    served_today = f"(sum by ({R}) (increase({m.PREDICTIONS_TOTAL}[1d])) > 0)"
    running = f"max by ({R}) ({m.MODEL_INFO})"
    not_score = f'feature!="{SCORE_FEATURE}"'
    out += [
        _alert(
            "FeatureMostlyMissing",
            f'({inc}{{bin="{MISSING_BIN}",{not_score}}} / on ({R}, feature) {rows})'
            f" > on (feature) group_left () {REF}:feature_missing_limit"
            f" and on ({R}, feature) ({rows} >= {rows_min})",
            "{{ $labels.feature }} is mostly missing",
            "The share of missing {{ $labels.feature }} over the last hour is far above training: "
            "a broken upstream feed?",
            "critical",
            config,
            "15m",
        ),
        _alert(
            "FeatureConstant",
            f'(max by ({R}, feature) ({inc}{{bin!="{MISSING_BIN}",{not_score}}})'
            f' / sum by ({R}, feature) ({inc}{{bin!="{MISSING_BIN}",{not_score}}}) >= 0.999)'
            f" and on (feature) ({REF}:feature_top_fraction < 0.9)"
            f' and on ({R}, feature) (sum by ({R}, feature) ({inc}{{bin!="{MISSING_BIN}"}})'
            f" >= {rows_min})",
            "{{ $labels.feature }} is constant",
            "Every present value of {{ $labels.feature }} over the last hour falls in one bin.",
            "critical",
            config,
            "15m",
        ),
        _alert(
            "UnseenCategorySurge",
            f'({inc}{{bin="{UNSEEN_BIN}"}} / on ({R}, feature) {rows})'
            f" > on (feature) group_left () {REF}:feature_unseen_limit"
            f' and on ({R}, feature) ({inc}{{bin="{UNSEEN_BIN}"}} >= {config.min_unseen_count})',
            "New categories of {{ $labels.feature }}",
            "Rows with categories of {{ $labels.feature }} never seen in training exceed the "
            "limit; `mlgitops monitor` on the prediction log lists them with example ids.",
            "warning",
            config,
            "15m",
        ),
        _alert(
            "ScoreCollapse",
            "(mlgitops:flag_share:1h <= 0 or mlgitops:flag_share:1h >= 1)"
            f" and on ({R}) (sum by ({R}) (increase({m.PREDICTIONS_TOTAL}[1h])) >= {rows_min})",
            "Predictions collapsed to one label",
            f"Every prediction of the last hour has the same label (release flags "
            f"{reference.positive_rate:.1%}).",
            "critical",
            config,
            "15m",
        ),
        _alert(
            "ZeroTraffic",
            # Per release that served today, unless it served in the last 15 minutes (its series
            # may be gone: pods down), or any release did, or it is gone while another one's
            # pods are up (it was replaced, not broken).
            f"{served_today} unless on ({R}) (sum by ({R}) (rate({m.PREDICTIONS_TOTAL}[15m])) > 0)"
            f" unless on () (sum(rate({m.PREDICTIONS_TOTAL}[15m])) > 0)"
            f" unless on ({R}) ({served_today} unless on ({R}) {running}"
            f" and on () count({running}))",
            "No predictions",
            "The model served no predictions for 15 minutes after serving traffic today.",
            "critical",
            config,
            config.rules.zero_traffic_for,
        ),
    ]
    for window, severity in zip(LABELLED_WINDOWS, ("critical", "warning"), strict=True):
        speed = "Fast" if window == LABELLED_WINDOWS[0] else "Slow"
        for name, num, rate_counts in (
            ("Fpr", "negatives", (reference.realized["fp"], reference.realized["tn"])),
            ("Fnr", "positives", (reference.realized["fn"], reference.realized["tp"])),
        ):
            released_high = wilson(rate_counts[0], sum(rate_counts), config.confidence)[1]
            released = rate_counts[0] / sum(rate_counts) if sum(rate_counts) else 0.0
            floor = released * (1 + config.min_rate_increase)
            p = f"mlgitops:labelled_{name.lower()}:{window}"
            n = f"mlgitops:labelled_{num}:{window}"
            out.append(
                _alert(
                    f"Realized{name}High{speed}",
                    f"({_wilson_low(p, n, z)} > {_c(released_high)})"
                    f" and ({p} > {_c(floor)})"
                    f" and on ({R}) (mlgitops:labelled_rows:{window} >= {config.min_labels})",
                    f"Realized {name.upper()} above the release over {window}",
                    f"The Wilson lower bound of the {name.upper()} from labels of the last "
                    f"{window} is above the upper bound of the released "
                    f"{reference.released[name.lower()]:.3f} ({config.confidence:.0%}).",
                    severity,
                    config,
                    "30m",
                    window=window,
                )
            )
    return out


def build_rule_groups(
    profile: ReferenceProfile, reference: ScoreReference, config: MonitoringConfig
) -> dict[str, Any]:
    """The body of a Prometheus rule file (and of a PrometheusRule's spec)."""
    prefix = config.rules.group_prefix
    cost_rules = []
    for window in ("1h", "1d"):
        outcome = f"mlgitops:expected_outcome:increase{window}"
        fp, fn = _c(reference.costs.false_positive), _c(reference.costs.false_negative)
        cost_rules.append(
            {
                "record": f"mlgitops:expected_cost_per_1000:{window}",
                "expr": f'1000 * ({fp} * sum by ({R}) ({outcome}{{outcome="fp"}})'
                f' + {fn} * sum by ({R}) ({outcome}{{outcome="fn"}}))'
                f" / mlgitops:expected_rows:{window}",
            }
        )
    return {
        "groups": [
            {"name": f"{prefix}-reference",
             "rules": _reference_rules(profile, reference, config)},
            {"name": f"{prefix}-windows", "rules": [
                *_window_rules("1h"), *_window_rules("1d"), *cost_rules,
                *(rule for w in LABELLED_WINDOWS for rule in _labelled_rules(w)),
            ]},
            {"name": f"{prefix}-alerts", "rules": _alerts(reference, config)},
        ]
    }  # fmt: skip


def prometheus_rule(groups: dict[str, Any], config: MonitoringConfig) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": config.rules.resource_name,
        "labels": dict(sorted(config.rules.resource_labels.items())),
    }
    if config.rules.namespace:
        metadata["namespace"] = config.rules.namespace
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": groups,
    }


# The files' first lines: what made them and that edits belong in params.yaml.
RULES_FILE_HEADER = (
    "# Generated by `dvc repro` (stage rules, src/mlgitops/stages/rules.py) from the reference\n"
    "# profile, the score reference and params.yaml monitoring. Do not edit; change params.\n"
)


def render(data: dict) -> str:
    """A rule file's text (either form): the header, then the YAML, same input same bytes."""
    return RULES_FILE_HEADER + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)
