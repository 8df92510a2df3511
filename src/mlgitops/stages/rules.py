"""Stage `rules`: Prometheus alert rules generated from the reference, as two files under k8s/.

A plain rule file (for a Prometheus configured by files) and a `monitoring.coreos.com/v1`
PrometheusRule (for the Prometheus Operator; kube-prometheus-stack loads only those carrying
its `release` label, set in monitoring.rules.resource_labels). Same inputs, same bytes.

The rules are release outputs (the bento ships them, k8s/ deploys them), so the stage runs after
the gate and writes them only for a model the gate passed; on any other verdict it leaves them
as they were, the released model's (src/mlgitops/verdict.py).
"""

from __future__ import annotations

from mlgitops.config import Params
from mlgitops.io import atomic_write_text
from mlgitops.monitoring.promrules import build_rule_groups, prometheus_rule, render
from mlgitops.monitoring.reference import load_score_reference
from mlgitops.profile import load_profile
from mlgitops.verdict import not_released, require_kept, tree_verdict


def run(params: Params) -> str:
    report = tree_verdict(params)
    if report.verdict != "PASS":
        outputs = [params.paths.prometheus_rules, params.paths.prometheus_rule_resource]
        require_kept(params, report, outputs)
        kept = " and ".join(str(path) for path in outputs)
        return not_released(params, report, f"{kept} keep the released model's rules")
    profile = load_profile(params.paths.profile)
    reference = load_score_reference(params.paths.score_reference)
    groups = build_rule_groups(profile, reference, params.monitoring)
    atomic_write_text(params.paths.prometheus_rules, render(groups))
    atomic_write_text(
        params.paths.prometheus_rule_resource, render(prometheus_rule(groups, params.monitoring))
    )
    n_alerts = sum(1 for g in groups["groups"] for r in g["rules"] if "alert" in r)
    n_records = sum(1 for g in groups["groups"] for r in g["rules"] if "record" in r)
    return (
        f"{n_alerts} alerts and {n_records} recording rules in {params.paths.prometheus_rules} "
        f"and {params.paths.prometheus_rule_resource}"
    )
