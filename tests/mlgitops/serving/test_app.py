"""The API app while its worker's model loads: requests wait for the load, bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.testclient import TestClient

from mlgitops.config import ServingConfig
from mlgitops.serving.app import create_app
from mlgitops.serving.auth import Credentials, RequestIds


def _loading_runtime(wait: float) -> SimpleNamespace:
    return SimpleNamespace(
        loaded=threading.Event(),
        model=None,
        error=None,
        settings=ServingConfig(load_wait_seconds=wait, prediction_log="off", feedback_log="off"),
        credentials=Credentials(None, None, RequestIds(None)),
        credential_error=None,
    )


def test_a_request_to_a_loading_worker_waits_for_the_load_to_end() -> None:
    app = create_app()
    runtime = _loading_runtime(wait=30)
    app.state.runtime = runtime

    def fail_load() -> None:
        time.sleep(0.5)
        runtime.error = "ModelError: sha256 mismatch"
        runtime.loaded.set()

    threading.Thread(target=fail_load).start()
    started = time.monotonic()
    response = TestClient(app).post("/predict", json={"records": [{}]})
    waited = time.monotonic() - started
    # Answered when loading ended (here: failed), not at once and not after the full wait.
    assert 0.45 <= waited < 10
    assert response.status_code == 503
    assert response.json()["message"] == "ModelError: sha256 mismatch"


def test_the_wait_is_bounded_by_load_wait_seconds() -> None:
    app = create_app()
    app.state.runtime = _loading_runtime(wait=0.3)
    started = time.monotonic()
    response = TestClient(app).get("/schema")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.json() == {"error": "not_ready", "message": "model is loading", "detail": []}


def test_metadata_answers_at_once_while_loading() -> None:
    app = create_app()
    runtime = _loading_runtime(wait=30)
    runtime.metadata = lambda: {"ready": False}
    app.state.runtime = runtime
    started = time.monotonic()
    response = TestClient(app).get("/metadata")
    assert time.monotonic() - started < 5
    assert response.json() == {"ready": False}


def test_a_credential_file_that_cannot_be_used_keeps_the_worker_closed(
    dev_artifacts: Any, tmp_path: Path
) -> None:
    """A predict token file named but missing: never ready, and neither reads nor labels are
    answered (not even /metadata, which the token would have guarded)."""
    from mlgitops.serving.runtime import Pinned, Runtime
    from tests.mlgitops.serving.conftest import dev_release

    release = dev_release(dev_artifacts)
    settings = ServingConfig(
        prediction_log="off",
        feedback_log="off",
        predict_token_file=str(tmp_path / "absent-token"),
        load_wait_seconds=5,
    )
    runtime = Runtime(Pinned(release.bento_tag, release.model_tag, release), settings)
    runtime.start(background=False)
    app = create_app()
    app.state.runtime = runtime
    client = TestClient(app)
    message = f"predict token file {tmp_path / 'absent-token'}: file not found"
    assert not runtime.ready
    for answer in (
        client.post("/predict", json={"records": [{}]}),
        client.get("/metadata"),
        client.get("/openapi.json"),
        client.post("/feedback", json={"request_id": "x", "label": 1}),
    ):
        assert answer.status_code == 503
        assert answer.json() == {"error": "not_ready", "message": message, "detail": []}
    runtime.close()
