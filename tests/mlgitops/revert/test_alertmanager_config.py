"""The example Alertmanager config (docs/revert/alertmanager.yml) is valid, sends exactly the
alerts `mlgitops revert serve` acts on to it, and authenticates with a token file."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from mlgitops.config import load_params
from mlgitops.revert.alerts import selector
from tests.support.project import REPO_ROOT

AMTOOL = shutil.which("amtool")
EXAMPLE = REPO_ROOT / "docs" / "revert" / "alertmanager.yml"
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool not installed (Debian prometheus-alertmanager; CI installs it)"
)


def _routes(*labels: str) -> str:
    assert AMTOOL is not None
    cmd = [AMTOOL, "config", "routes", "test", "--config.file", str(EXAMPLE), *labels]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()


@needs_amtool
def test_example_config_is_valid() -> None:
    assert AMTOOL is not None
    result = subprocess.run(
        [AMTOOL, "check-config", str(EXAMPLE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
def test_the_alerts_the_receiver_acts_on_reach_it_and_still_page() -> None:
    labels = selector(load_params(REPO_ROOT / "params.yaml"))
    ours = [f"{k}={v}" for k, v in labels.items()]
    assert _routes("alertname=RealizedFprHighFast", *ours) == "mlgitops-revert,ml-pager"
    assert _routes("alertname=FeatureDriftSlow", "team=ml", "severity=warning") == "default"
    assert _routes("alertname=Other", "team=payments", "severity=critical") == "default"


def test_the_webhook_posts_to_the_serve_default_with_a_token_file() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    [receiver] = [r for r in config["receivers"] if r["name"] == "mlgitops-revert"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"] == "http://127.0.0.1:9095/alerts"
    auth = webhook["http_config"]["authorization"]
    assert auth["type"] == "Bearer"
    assert auth["credentials_file"]
    assert "credentials" not in auth  # the token is never written into the config


def test_each_release_is_its_own_notification() -> None:
    # The receiver acts on the alerts about the release its base pins; grouping by the
    # release keeps an old release's alerts out of the current one's payload.
    config = yaml.safe_load(EXAMPLE.read_text())
    assert "bento_tag" in config["route"]["group_by"]
