"""The generated Prometheus rules under promtool: unchanged traffic fires nothing, each failure
fires the right alert naming the right feature and the release (`bento_tag`), also while two
releases serve side by side. Skipped (with the reason) without promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import metric_names as m
from mlgitops.monitoring.operating_point import build_reference
from mlgitops.monitoring.promrules import (
    SCORE_FEATURE,
    build_rule_groups,
    prometheus_rule,
    render,
)
from mlgitops.monitoring.reference import Costs
from mlgitops.profile import ReferenceProfile, bin_labels, reference_fractions
from mlgitops.profiling import categorical_profile, numeric_profile
from tests.support.project import REPO_ROOT

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus; CI installs it)"
)
ROWS_PER_MINUTE = 100.0
LABELS_PER_MINUTE = 20.0
MINUTES = 180
TAG = "fraud-detector:0123abcd"
OLD_TAG = "fraud-detector:4567cdef"


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(5)
    n = 20_000
    amount = pd.Series(rng.gamma(2.0, 30.0, n))
    distance = pd.Series(rng.uniform(0, 500, n)).where(rng.uniform(size=n) > 0.05)
    names = ["grocery", "fuel", "travel", "retail"]
    category = pd.Series(rng.choice(names, n, p=[0.4, 0.3, 0.2, 0.1]))
    profile = ReferenceProfile(
        n_rows=n,
        target="is_fraud",
        positive_class="1",
        label_rate=0.03,
        features={
            "amount": numeric_profile(amount, 10),
            "distance": numeric_profile(distance, 10),
            "merchant_category": categorical_profile(category, 200),
        },
    )
    scores = rng.beta(0.5, 12.0, 10_000)
    labels = (rng.uniform(size=scores.size) < scores * 1.3).astype(int)
    metrics = {
        "threshold": float(np.quantile(scores, 0.88)),
        "precision": 0.2, "recall": 0.7, "fpr": 0.1, "fnr": 0.3,
        "expected_cost_per_1000": 1000.0, "alerts_per_1000": 120.0,
    }  # fmt: skip
    costs = Costs(false_positive=5, false_negative=120, currency="EUR")
    score = build_reference(labels, scores, metrics, costs, 10)
    return profile, score


def _series(
    name: str,
    labels: dict[str, str],
    per_minute: float,
    stop: int | None = None,
    vanish: bool = False,
) -> dict:
    """A counter growing `per_minute` from 0; from minute `stop` on it stays (its pods serve
    nothing) or, with `vanish`, has no samples (its pods are gone: the release was replaced)."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    step = f"{per_minute:.6g}"
    if stop is None:
        values = f"0+{step}x{MINUTES}"
    elif vanish:
        values = f"0+{step}x{stop} _x{MINUTES - stop}"
    else:
        # Slightly above the last sample: a plateau a rounding step lower would be a reset.
        plateau = float(step) * stop * (1 + 1e-9)
        values = f"0+{step}x{stop} {plateau!r}x{MINUTES - stop}"
    return {"series": f"{name}{{{inner}}}", "values": values}


def traffic(profile, score, change: str, tag: str = TAG, replaced_at: int | None = None) -> list:
    """Counters of three hours of traffic of release `tag` at the reference fractions, except
    for `change`; with `replaced_at`, the release's pods are gone from that minute on."""
    series = []
    stop = 90 if change == "zero_traffic" else replaced_at
    vanish = replaced_at is not None

    def add(name: str, labels: dict[str, str], per_minute: float) -> None:
        labels = {"bento_tag": tag, **labels}
        series.append(_series(name, labels, per_minute, stop, vanish))

    for feature, spec in profile.features.items():
        fractions = reference_fractions(spec).copy()
        names = bin_labels(spec)
        if change == "covariate_shift" and feature == "amount":
            fractions = np.array([0.02] * 7 + [0.28, 0.28, 0.3] + [0.0])
        if change == "broken_feature" and feature == "distance":
            fractions = np.zeros_like(fractions)
            fractions[-1] = 1.0
        if change == "new_category" and feature == "merchant_category":
            fractions = fractions * 0.92
            fractions[names.index("unseen")] += 0.08
        for name, fraction in zip(names, fractions, strict=True):
            add(m.FEATURE_BIN_TOTAL, {"feature": feature, "bin": name}, ROWS_PER_MINUTE * fraction)
    score_fractions = reference_fractions(score.score)
    flag = score.positive_rate
    expected = dict(score.expected)
    if change == "score_collapse":
        score_fractions = np.zeros_like(score_fractions)
        score_fractions[0] = 1.0
        flag = 0.0
        expected = {"tp": 0.0, "fp": 0.0, "tn": 0.999, "fn": 0.001}
    for name, fraction in zip(bin_labels(score.score), score_fractions, strict=True):
        add(m.SCORE_BIN_TOTAL, {"bin": name}, ROWS_PER_MINUTE * fraction)
    for label, share in (("1", flag), ("0", 1.0 - flag)):
        add(m.PREDICTIONS_TOTAL, {"label": label}, ROWS_PER_MINUTE * share)
    for outcome, share in expected.items():
        add(m.EXPECTED_OUTCOME_TOTAL, {"outcome": outcome}, ROWS_PER_MINUTE * share)
    realized = {k: v / score.n_rows for k, v in score.realized.items()}
    if change == "fnr_degradation":
        positives = realized["tp"] + realized["fn"]
        realized["tp"], realized["fn"] = positives * 0.3, positives * 0.7
    if change == "fpr_degradation":
        negatives = realized["tn"] + realized["fp"]
        realized["tn"], realized["fp"] = negatives * 0.6, negatives * 0.4
    for outcome, share in realized.items():
        add(m.LABELLED_OUTCOME_TOTAL, {"outcome": outcome}, LABELS_PER_MINUTE * share)
    info = {"bento_tag": tag, "model_hash": f"sha256:{tag[-4:]}",
            "data_hash": "md5:bb", "git_commit": f"c0ffee{tag[-1]}"}  # fmt: skip
    values = f"1x{MINUTES}" if replaced_at is None else f"1x{replaced_at} _x{MINUTES - replaced_at}"
    series.append({**_series(m.MODEL_INFO, info, 0.0), "values": values})
    return series


CASES = {
    "none": [],
    "covariate_shift": [("FeatureDriftFast", "amount"), ("FeatureDriftSlow", "amount")],
    "new_category": [
        ("FeatureDriftFast", "merchant_category"),
        ("FeatureDriftSlow", "merchant_category"),
        ("UnseenCategorySurge", "merchant_category"),
    ],
    "broken_feature": [
        ("FeatureDriftFast", "distance"),
        ("FeatureDriftSlow", "distance"),
        ("FeatureMostlyMissing", "distance"),
    ],
    "score_collapse": [
        ("ScoreCollapse", None),
        # Nothing flagged while fraud still arrives: the label-free FNR estimate rises too.
        ("EstimatedFnrHighSlow", None),
        ("ScoreDriftFast", SCORE_FEATURE),
        ("ScoreDriftSlow", SCORE_FEATURE),
    ],
    "zero_traffic": [("ZeroTraffic", None)],
    "fnr_degradation": [("RealizedFnrHighFast", None), ("RealizedFnrHighSlow", None)],
    "fpr_degradation": [("RealizedFprHighFast", None), ("RealizedFprHighSlow", None)],
}


def _firing(expected: list[tuple[str, str | None, str]]) -> list[dict]:
    """exp_samples of `count by (alertname, feature, bento_tag) (ALERTS{firing})`."""
    samples = []
    for name, feature, tag in sorted(expected, key=lambda x: (x[0], x[1] or "", x[2])):
        labels = f'alertname="{name}",bento_tag="{tag}"' + (
            f',feature="{feature}"' if feature else ""
        )
        samples.append({"labels": "{" + labels + "}", "value": 1})
    return samples


def _firing_test(rules: Path, series: list[dict], expected: list) -> dict:
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "count by (alertname, feature, bento_tag)"
                        ' (ALERTS{alertstate="firing"})',
                        "eval_time": "170m",
                        "exp_samples": _firing(expected),
                    }
                ],
            }
        ],
    }


def _promtool_test(tmp_path: Path, test: dict) -> None:
    """`promtool test rules` of a unit-test file; its output is the failure message."""
    test_file = tmp_path / "test.yaml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@needs_promtool
@pytest.mark.parametrize("case", sorted(CASES))
def test_rules_fire_exactly_on_their_failure(tmp_path: Path, reference, case):
    profile, score = reference
    config = MonitoringConfig()
    rules = tmp_path / "rules.yaml"
    rules.write_text(render(build_rule_groups(profile, score, config)))
    expected = [(name, feature, TAG) for name, feature in CASES[case]]
    _promtool_test(tmp_path, _firing_test(rules, traffic(profile, score, case), expected))


# Two releases serve side by side (a rollout, or the old pods still draining): each is judged
# on its own series, and each alert names the release it is about.
ROLLOUTS = {
    "only the new release broke": (("none", None), ("broken_feature", None)),
    "each broke its own way": (("fpr_degradation", None), ("covariate_shift", None)),
    "the old release was replaced": (("none", 60), ("none", None)),
    "the old release was replaced, the new one stopped": (("none", 60), ("zero_traffic", None)),
}


@pytest.mark.slow
@needs_promtool
@pytest.mark.parametrize("rollout", sorted(ROLLOUTS))
def test_each_release_alerts_on_its_own_series(tmp_path: Path, reference, rollout):
    profile, score = reference
    rules = tmp_path / "rules.yaml"
    rules.write_text(render(build_rule_groups(profile, score, MonitoringConfig())))
    (old_change, replaced_at), (new_change, _) = ROLLOUTS[rollout]
    series = traffic(profile, score, old_change, OLD_TAG, replaced_at)
    series += traffic(profile, score, new_change, TAG)
    expected = [(name, feature, OLD_TAG) for name, feature in CASES[old_change]]
    expected += [(name, feature, TAG) for name, feature in CASES[new_change]]
    test = _firing_test(rules, series, expected)
    # Every recorded per-release figure exists once per release still serving (no
    # many-to-many error dropped one): the rows of each feature over the last hour.
    serving = [OLD_TAG, TAG] if replaced_at is None else [TAG]
    rows = [
        {"labels": f'{{bento_tag="{tag}"}}', "value": len(profile.features) + 1}
        for tag in sorted(serving)
    ]
    test["tests"][0]["promql_expr_test"].append(
        {
            "expr": "count by (bento_tag) (mlgitops:feature_rows:increase1h)",
            "eval_time": "170m",
            "exp_samples": rows,
        }
    )
    _promtool_test(tmp_path, test)


@needs_promtool
def test_alert_annotations_name_the_model_and_the_rollback(tmp_path: Path, reference):
    profile, score = reference
    groups = build_rule_groups(profile, score, MonitoringConfig())
    rules = tmp_path / "rules.yaml"
    rules.write_text(render(groups))
    alert = next(r for g in groups["groups"] for r in g["rules"] if r.get("alert") == "ZeroTraffic")
    description = alert["annotations"]["description"].split("{{")[0] + (
        f"Model {TAG} (model sha256:abcd, data md5:bb) from commit c0ffeed. "
        "Roll back: mlgitops revert (a branch restoring the last release before it)"
    )
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": traffic(profile, score, "zero_traffic"),
                "alert_rule_test": [
                    {
                        "eval_time": "170m",
                        "alertname": "ZeroTraffic",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "team": "ml",
                                    "bento_tag": TAG,
                                },
                                "exp_annotations": {
                                    "summary": alert["annotations"]["summary"],
                                    "description": description,
                                    "runbook_url": alert["annotations"]["runbook_url"],
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    _promtool_test(tmp_path, test)


@needs_promtool
def test_committed_rule_files_pass_promtool_check(tmp_path: Path):
    plain = REPO_ROOT / "k8s" / "monitoring" / "rules.yaml"
    resource_file = REPO_ROOT / "k8s" / "monitoring" / "prometheusrule.yaml"
    resource = yaml.safe_load(resource_file.read_text())
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["labels"]["release"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(resource["spec"]))
    assert resource["spec"] == yaml.safe_load(plain.read_text())
    for path in (plain, spec):
        result = subprocess.run(
            [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rule_carries_the_configured_labels(reference):
    profile, score = reference
    config = MonitoringConfig.model_validate(
        {"rules": {"resource_labels": {"release": "prom"}, "namespace": "monitoring"}}
    )
    resource = prometheus_rule(build_rule_groups(profile, score, config), config)
    assert resource["metadata"] == {
        "name": "mlgitops-model-alerts",
        "labels": {"release": "prom"},
        "namespace": "monitoring",
    }


def test_rules_are_deterministic(reference):
    profile, score = reference
    first = render(build_rule_groups(profile, score, MonitoringConfig()))
    assert first == render(build_rule_groups(profile, score, MonitoringConfig()))
