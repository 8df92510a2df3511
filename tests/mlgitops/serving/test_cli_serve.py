"""`mlgitops serve`: the pinned tag, the server's environment, and a real run from release.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from mlgitops.cli.local_server import serve_command, serve_environment
from mlgitops.config import ServingConfig, load_params
from mlgitops.errors import ServingError
from mlgitops.release import ReleaseRecord
from mlgitops.serving.runtime import Pinned, load_pinned
from tests.mlgitops.serving.conftest import Packaged, stop_server, wait_for
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[3]


def _record(packaged: Packaged) -> ReleaseRecord:
    meta = packaged.artifacts.metadata
    name, version = packaged.bento_tag.split(":")
    return ReleaseRecord(
        bento_name=name,
        bento_version=version,
        model_tag=packaged.model_tag,
        model_hash=str(meta["model_hash"]),
        data_hash=str(meta["data_hash"]),
        params_hash=str(meta["params_hash"]),
        image=f"registry.example.com/x:{version}",
        threshold=float(meta["threshold"]),  # type: ignore[arg-type]
        threshold_policy="fixed",
        metrics={"roc_auc": 0.9},
        data_until=str(meta["data_until"]),
        mlgitops_version="0.1.0",
    )


def test_pinned_tag_never_latest(packaged: Packaged, tmp_path: Path) -> None:
    pin = tmp_path / "pinned.json"
    release = _record(packaged)
    raw = {"model_tag": "m:abc", "bento_tag": "b:abc", "release": release.model_dump(mode="json")}
    pin.write_text(json.dumps(raw))
    assert load_pinned(pin, ServingConfig()) == Pinned("b:abc", "m:abc", release)
    assert load_pinned(pin, ServingConfig(model_tag="m:def")).model_tag == "m:def"
    for bad in ("m:latest", "m", ""):
        pin.write_text(json.dumps({"model_tag": bad}))
        with pytest.raises(ServingError):
            load_pinned(pin, ServingConfig())
    with pytest.raises(ServingError, match="no pinned model"):
        load_pinned(tmp_path / "absent.json", ServingConfig())


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGITOPS_MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("MLGITOPS_PREDICTION_LOG", "off")
    settings = ServingConfig.from_env()
    assert (settings.max_batch_size, settings.prediction_log) == (7, "off")
    monkeypatch.setenv("MLGITOPS_MAX_BATCH_SIZE", "0")
    with pytest.raises(ServingError):
        ServingConfig.from_env()


def test_serve_environment_carries_params_and_tags(packaged: Packaged) -> None:
    params = load_params(REPO / "params.yaml")
    env = serve_environment(params, _record(packaged), "abc123", {"PATH": "/bin"})
    assert env["MLGITOPS_MODEL_TAG"] == packaged.model_tag
    assert env["MLGITOPS_BENTO_TAG"] == packaged.bento_tag
    assert env["MLGITOPS_GIT_COMMIT"] == "abc123"
    assert env["MLGITOPS_MAX_BATCH_SIZE"] == str(params.serving.max_batch_size)
    assert Path(env["MLGITOPS_FEEDBACK_LOG"]).is_absolute()
    assert "127.0.0.1" in serve_command(packaged.bento_tag, 3000)


@pytest.mark.timeout(180)
def test_mlgitops_serve_runs_the_release_on_localhost(packaged: Packaged, tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["paths"]["release"] = str(tmp_path / "release.json")
    raw["paths"]["bento_archive"] = str(tmp_path / "absent.tar")
    raw["serving"]["prediction_log"] = str(tmp_path / "predictions.jsonl")
    raw["serving"]["feedback_log"] = str(tmp_path / "feedback.jsonl")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    (tmp_path / "release.json").write_text(_record(packaged).model_dump_json())
    port = free_port()
    env = {"BENTOML_HOME": str(packaged.home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlgitops", "serve", "--port", str(port), "--params",
         str(params_file)],
        cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_for(f"{url}/readyz", 200, 120, process)
        meta = httpx.get(f"{url}/metadata").json()
        assert meta["bento_tag"] == packaged.bento_tag
        assert meta["model_tag"] == packaged.model_tag
    finally:
        stop_server(process)
