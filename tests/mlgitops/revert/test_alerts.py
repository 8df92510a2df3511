"""Alertmanager's webhook payload: what parses, what is refused (naming the field), who matches."""

from __future__ import annotations

import json

import pytest

from mlgitops.config import load_params
from mlgitops.revert.alerts import PayloadError, matches, parse_payload, selector
from tests.mlgitops.revert.helpers import payload
from tests.support.project import REPO_ROOT


def test_a_payload_as_alertmanager_sends_it() -> None:
    parsed = parse_payload(json.dumps(payload()).encode())
    assert parsed.status == "firing"
    [alert] = parsed.alerts
    assert alert.name == "RealizedFprHighFast"
    assert alert.fingerprint == "5f1c2a9e0b7d4c31"
    assert alert.starts_at.isoformat() == "2026-11-30T10:15:00+00:00"
    # Fields we do not declare are kept (the evidence is the payload as sent).
    assert parsed.model_extra["groupKey"].startswith("{}/")


@pytest.mark.parametrize(
    ("edit", "status", "message"),
    [
        (lambda p: "{not json", 400, "body is not valid JSON"),
        (lambda p: [], 422, "(top level)"),
        (lambda p: {**p, "version": "3"}, 422, "version: Input should be '4'"),
        (lambda p: {**p, "alerts": []}, 422, "alerts: List should have at least 1 item"),
        (
            lambda p: {**p, "status": "pending"},
            422,
            "status: Input should be 'firing' or 'resolved'",
        ),
        (lambda p: _alert(p, fingerprint=None), 422, "alerts.0.fingerprint: Field required"),
        (lambda p: _alert(p, startsAt="yesterday"), 422, "alerts.0.startsAt: Input should be"),
        (lambda p: _alert(p, labels={"severity": 1}), 422, "alerts.0.labels.severity"),
    ],
)
def test_malformed_payloads_name_what_is_wrong(edit, status: int, message: str) -> None:
    body = edit(payload())
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    with pytest.raises(PayloadError) as caught:
        parse_payload(raw)
    assert caught.value.status == status
    assert message in str(caught.value)


def _alert(body: dict, **fields: object) -> dict:
    alert = {k: v for k, v in body["alerts"][0].items() if fields.get(k, ...) is not None}
    alert.update({k: v for k, v in fields.items() if v is not None})
    return {**body, "alerts": [alert]}


def test_the_default_selector_is_our_rules_labels_and_critical() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    labels = selector(params)
    assert labels == {"team": "ml", "severity": "critical"}
    [ours] = parse_payload(json.dumps(payload()).encode()).alerts
    [warning] = parse_payload(json.dumps(payload(severity="warning")).encode()).alerts
    [other_team] = parse_payload(json.dumps(payload(team="payments")).encode()).alerts
    [resolved] = parse_payload(json.dumps(payload("resolved")).encode()).alerts
    assert matches(ours, labels)
    assert not matches(warning, labels)
    assert not matches(other_team, labels)
    assert not matches(resolved, labels)
