"""The release's real bento as a container: build, `buildah run`, /readyz, and (once the service
has its API) the same scores as the bento served locally.

The archive is `$MLGITOPS_BENTO_ARCHIVE`, else params.yaml's `paths.bento_archive` (after
`dvc repro`); the request body is the JSON file `$MLGITOPS_PREDICT_PAYLOAD`, else the comparison
is skipped. The image goes to `localhost/mlgitops-test/<bento name>` and is removed afterwards,
so this never touches the release's own image.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgitops.config import load_params
from mlgitops.errors import ConfigError
from mlgitops.image.bento import extract_bento, read_bento_info
from mlgitops.image.build import build_image
from mlgitops.image.buildah import Buildah
from mlgitops.image.run import RunningContainer, free_port, running_container, wait_http

pytestmark = [pytest.mark.container, pytest.mark.slow]


def release_archive() -> Path | None:
    configured = os.environ.get("MLGITOPS_BENTO_ARCHIVE")
    if configured:
        return Path(configured)
    try:
        archive = load_params().paths.bento_archive
    except ConfigError:
        return None
    return archive if archive.is_file() else None


@pytest.fixture(scope="module")
def bento_archive(container_tools: None) -> Path:
    archive = release_archive()
    if archive is None:
        pytest.skip("no bento archive: run `dvc repro` or set MLGITOPS_BENTO_ARCHIVE")
    return archive


@pytest.fixture(scope="module")
def release_image(bento_archive: Path, image_cache: Path, buildah: Buildah) -> Iterator[str]:
    name = read_bento_info(bento_archive).name
    result = build_image(bento_archive, f"localhost/mlgitops-test/{name}", cache_dir=image_cache)
    yield result.ref
    if result.built:
        buildah.remove_image(result.ref)


def _post(url: str, payload: object) -> object:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def served_locally(bento_dir: Path, tmp_path: Path) -> Iterator[str]:
    """`bentoml serve` of the unpacked bento with this machine's interpreter."""
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    cmd = [sys.executable, "-m", "bentoml", "serve", str(bento_dir), "--port", str(port)]
    with (tmp_path / "local.log").open("wb") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 120, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        # Only the server: it stops its own workers (which setsid out of its group).
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def release_container(release_image: str, buildah: Buildah) -> Iterator[RunningContainer]:
    with running_container(release_image, buildah, startup_timeout=180) as container:
        yield container


@pytest.mark.timeout(900)
def test_release_image_becomes_ready(release_container: RunningContainer) -> None:
    # running_container already waited for /readyz; ask again to see it stays up.
    with urllib.request.urlopen(release_container.base_url + "/readyz", timeout=10) as response:
        assert response.status == 200
    assert release_container.process.poll() is None


@pytest.mark.timeout(600)
def test_release_image_scores_like_the_local_bento(
    release_container: RunningContainer, bento_archive: Path, tmp_path: Path
) -> None:
    payload_file = os.environ.get("MLGITOPS_PREDICT_PAYLOAD")
    if not payload_file:
        pytest.skip("set MLGITOPS_PREDICT_PAYLOAD to a JSON request body for /predict")
    payload = json.loads(Path(payload_file).read_text(encoding="utf-8"))
    in_container = _post(release_container.base_url + "/predict", payload)
    bento_dir = tmp_path / "bento"
    extract_bento(bento_archive, bento_dir)
    with served_locally(bento_dir, tmp_path) as url:
        locally = _post(url + "/predict", payload)
    assert in_container == locally
