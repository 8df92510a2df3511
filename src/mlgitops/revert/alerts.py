"""Alertmanager's webhook payload (`webhook_config`, payload version "4") and which alerts count.

Only the fields we read are declared; Alertmanager's others (groupKey, truncatedAlerts, ...)
are kept, so the stored evidence is the payload as sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlgitops.config import Params
from mlgitops.errors import validation_line
from mlgitops.monitoring.metric_names import RELEASE_LABEL

Status = Literal["firing", "resolved"]


class PayloadError(ValueError):
    """A request body that is not Alertmanager's payload; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str = Field(min_length=1)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "(no alertname)")

    @property
    def bento_tag(self) -> str | None:
        """The release the alert is about: our rules keep the served series' label."""
        return self.labels.get(RELEASE_LABEL) or None


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    version: Literal["4"]
    status: Status
    receiver: str = ""
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[Alert] = Field(min_length=1)


def parse_payload(body: bytes) -> AlertPayload:
    """The payload, or PayloadError 400 (not JSON) / 422 (naming the first wrong field)."""
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PayloadError(400, f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise PayloadError(400, "body is not valid JSON: nested too deeply") from None
    except ValueError as error:  # e.g. an integer over the interpreter's digit limit
        raise PayloadError(400, f"body is not valid JSON: {error}") from None
    try:
        return AlertPayload.model_validate(raw)
    except ValidationError as error:
        raise PayloadError(422, validation_line(error)) from None


def selector(params: Params) -> dict[str, str]:
    """The labels a firing alert must carry: our rules' labels (our model's) and revert's."""
    return {**params.monitoring.rules.alert_labels, **params.revert.selector}


def matches(alert: Alert, labels: Mapping[str, str]) -> bool:
    return alert.status == "firing" and all(alert.labels.get(k) == v for k, v in labels.items())


def describe_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(any)"


def about_release(alerts: list[Alert], bento_tag: str) -> list[Alert]:
    return [alert for alert in alerts if alert.bento_tag == bento_tag]


def printable(text: str) -> str:
    """`text` with control characters escaped: a label cannot forge a line of the log."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
