"""The example Alertmanager route is valid and routes each generated alert by its severity."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.support.project import REPO_ROOT

AMTOOL = shutil.which("amtool")
EXAMPLE = REPO_ROOT / "k8s" / "monitoring" / "alertmanager.example.yaml"
RULES = REPO_ROOT / "k8s" / "monitoring" / "rules.yaml"
pytestmark = pytest.mark.skipif(
    AMTOOL is None, reason="amtool not installed (Debian prometheus-alertmanager; CI installs it)"
)


def _amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, check=False)


def test_example_config_is_valid():
    result = _amtool("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_generated_alert_reaches_the_receiver_of_its_severity():
    receivers = {"critical": "ml-pager", "warning": "ml-tickets", "ticket": "ml-tickets"}
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    assert alerts
    for alert in alerts:
        labels = [f"alertname={alert['alert']}", *(f"{k}={v}" for k, v in alert["labels"].items())]
        result = _amtool("config", "routes", "test", "--config.file", str(EXAMPLE), *labels)
        assert result.stdout.strip() == receivers[alert["labels"]["severity"]], (alert, result)
