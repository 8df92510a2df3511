"""The metric contract: prometheus_client, given CLIENT_NAMES, exposes exactly the names and
labels the generated rules read."""

from __future__ import annotations

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from mlgitops.monitoring import metric_names as m
from tests.support.project import REPO_ROOT


def test_client_names_expose_the_contract():
    registry = CollectorRegistry()
    for exposed, client in m.CLIENT_NAMES.items():
        kind = Gauge if exposed == m.MODEL_INFO else Counter
        metric = kind(client, "doc", m.LABELS[exposed], namespace=m.NAMESPACE, registry=registry)
        metric.labels(*("x" for _ in m.LABELS[exposed])).inc()
    text = generate_latest(registry).decode()
    for exposed, labels in m.LABELS.items():
        line = next(row for row in text.splitlines() if row.startswith(exposed + "{"))
        assert all(f'{label}="x"' in line for label in labels), line


def test_generated_rules_read_only_contract_metrics():
    text = (REPO_ROOT / "k8s" / "monitoring" / "rules.yaml").read_text()
    exprs = " ".join(
        rule["expr"] for group in yaml.safe_load(text)["groups"] for rule in group["rules"]
    )
    import re

    raw = set(re.findall(r"\bmlgitops_[a-z_]+\b(?!:)", exprs))  # not the recorded mlgitops_x:y
    assert raw <= set(m.LABELS), raw - set(m.LABELS)
    assert m.FEATURE_BIN_TOTAL in raw
