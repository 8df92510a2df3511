"""`mlgitops serve`: the pinned tag, the server's environment, and a real run from release.json."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlgitops.cli.local_server import local_logs, serve_command, serve_environment
from mlgitops.config import ServingConfig, load_params, parse_params
from mlgitops.errors import ServingError
from mlgitops.release import ReleaseRecord
from mlgitops.serving.runtime import Pinned, load_pinned
from tests.mlgitops.serving.conftest import Packaged, stop_server, wait_for
from tests.support.ports import free_port
from tests.support.project import run
from tests.support.readme import readme_blocks
from tests.support.serve import mlgitops_serve

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
    env = {"BENTOML_HOME": str(packaged.home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    with mlgitops_serve(
        ["--params", str(params_file)],
        cwd=tmp_path,
        env=env,
        log=tmp_path / "serve.log",
        timeout=120,
    ) as url:
        meta = httpx.get(f"{url}/metadata").json()
        assert meta["bento_tag"] == packaged.bento_tag
        assert meta["model_tag"] == packaged.model_tag


def test_local_logs_default_to_paths_and_params_may_override(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert "prediction_log" not in raw["serving"]  # the container's default is not the local one
    params = parse_params(raw)
    assert local_logs(params) == {
        "prediction_log": str(Path("reports/serve/predictions.jsonl").resolve()),
        "feedback_log": str(Path("reports/serve/feedback.jsonl").resolve()),
    }
    raw["serving"].update(prediction_log="stdout", feedback_log="off")
    assert local_logs(parse_params(raw)) == {"prediction_log": "stdout", "feedback_log": "off"}
    raw["serving"].update(prediction_log=str(tmp_path / "p.jsonl"))
    assert local_logs(parse_params(raw))["prediction_log"] == str(tmp_path / "p.jsonl")
    # A container without params.yaml keeps stdout.
    assert ServingConfig().prediction_log == "stdout"


def _traffic(packaged: Packaged, rows: int) -> list[dict[str, Any]]:
    """Rows like the training data (no drift), as a client sends them: missing values omitted."""
    frame = packaged.artifacts.frame.head(rows)
    return [
        {k: v for k, v in row.items() if not (v is None or (isinstance(v, float) and v != v))}
        for row in frame.to_dict("records")
    ]


@pytest.mark.timeout(300)
def test_make_serve_logs_predictions_that_monitor_and_audit_read(
    packaged: Packaged, tmp_path: Path
) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    artifacts = packaged.artifacts
    raw["paths"].update(
        release=str(tmp_path / "release.json"),
        bento_archive=str(tmp_path / "absent.tar"),
        profile=str(artifacts.profile_file),
        score_reference=str(artifacts.score_reference_file),
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))  # paths.serve_* as shipped
    (tmp_path / "release.json").write_text(_record(packaged).model_dump_json())
    port = free_port()
    env = {"BENTOML_HOME": str(packaged.home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out, err = tmp_path / "server.out", tmp_path / "server.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlgitops", "serve", "--port", str(port)],
            cwd=tmp_path, env=env, start_new_session=True, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    posted, labelled = 0, 0
    token_file = tmp_path / "reports/serve/feedback-token"
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_for(f"{url}/readyz", 200, 120, process), err.read_text()[-2000:]
        # The launcher made the feedback token (and the request id key), for its owner only.
        for secret in (token_file, token_file.with_name("request-id-key")):
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600
            assert re.fullmatch(r"[0-9a-f]{64}\n", secret.read_text())
        auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        rows = _traffic(packaged, 400)
        with httpx.Client(base_url=url, timeout=30) as client:
            for start in range(0, len(rows), 100):
                answer = client.post("/predict", json={"records": rows[start : start + 100]})
                assert answer.status_code == 200, answer.text
                posted += len(answer.json()["predictions"])
                for row, prediction in enumerate(answer.json()["predictions"][:40]):
                    feedback = {"request_id": answer.json()["request_id"], "row": row}
                    feedback["label"] = prediction["label"]
                    assert client.post("/feedback", json=feedback).status_code == 401
                    assert client.post("/feedback", json=feedback, headers=auth).status_code == 202
                    labelled += 1
            # The README's label example, as written, on this server's port.
            [example] = [b for b in readme_blocks("## Serving") if "Authorization" in b]
            example = example.replace("127.0.0.1:3000", f"127.0.0.1:{port}")
            posted_example = run(["bash", "-euo", "pipefail", "-c", example], tmp_path)
            assert json.loads(posted_example.stdout)["status"] == "accepted"
            posted += 1
            labelled += 1
    finally:
        stop_server(process)
    log = tmp_path / "reports/serve/predictions.jsonl"
    assert (
        err.read_text()
        .splitlines()[0]
        .endswith(
            f"predictions are appended to {log}, feedback to {log.with_name('feedback.jsonl')}; "
            f"/feedback takes the bearer token in {token_file}"
        )
    )
    assert len(log.read_text().splitlines()) == posted == 401
    assert '"model_version"' not in out.read_text()  # stdout is the server's own log

    # The README's commands, as written, on what the server wrote.
    [commands] = [b for b in readme_blocks("## Serving") if "mlgitops monitor" in b]
    monitor, audit = commands.strip().splitlines()
    checked = run(["bash", "-c", monitor], tmp_path, check=False)
    assert checked.returncode == 0, checked.stderr
    summary = json.loads((tmp_path / "reports/monitor/summary.json").read_text())
    assert summary["input"]["log_lines"] == posted
    assert summary["input"]["malformed_lines"] == 0
    assert summary["input"]["label_rows"] == labelled
    assert summary["input"]["malformed_labels"] == 0
    assert summary["rows"] == posted
    sampled = run(["bash", "-c", audit], tmp_path)
    assert "malformed" not in sampled.stdout
    assert f"of {posted} predictions of {packaged.model_tag}" in sampled.stdout


def test_the_launcher_keeps_its_secrets_private(tmp_path: Path) -> None:
    from mlgitops.cli.local_server import ensure_secret_file, local_credentials

    path = tmp_path / "serve" / "feedback-token"
    made = ensure_secret_file(path)
    value = path.read_text()
    assert made == path.resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret_file(path) == made
    assert path.read_text() == value  # kept across runs
    path.chmod(0o644)
    with pytest.raises(ServingError, match=r"readable by others \(mode 0644\); `chmod 600` it"):
        ensure_secret_file(path)
    path.chmod(0o600)
    path.write_text("short\n")
    with pytest.raises(ServingError, match="at least 32 are required"):
        ensure_secret_file(path)
    # A token file named in the environment is used as given (made absolute), not replaced.
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["paths"]["serve_feedback_token"] = str(tmp_path / "made-token")
    raw["paths"]["serve_request_id_key"] = str(tmp_path / "made-key")
    env = local_credentials(parse_params(raw), {"MLGITOPS_FEEDBACK_TOKEN_FILE": str(path)})
    assert env == {
        "MLGITOPS_FEEDBACK_TOKEN_FILE": str(path.resolve()),
        "MLGITOPS_REQUEST_ID_KEY_FILE": str(tmp_path / "made-key"),
    }
    assert not (tmp_path / "made-token").exists()
    assert (tmp_path / "made-key").is_file()
