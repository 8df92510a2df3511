"""The release's real bento as a container: build, `buildah run`, /readyz, and the same scores
on a fixed payload as the bento served locally.

The archive is `$MLGITOPS_BENTO_ARCHIVE`, else params.yaml's `paths.bento_archive` (after
`dvc repro`), else — as on a clean checkout in CI — the archive of a `dvc repro` run in a
temporary copy of this project. The payload is fixed: generated transactions, shaped by the
bento's own reference profile. The image goes to `localhost/mlgitops-test/<bento name>` and is
removed afterwards, so this never touches the release's own image.
"""

from __future__ import annotations

import contextlib
import csv
import io
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
from mlgitops.data.generate import GeneratorConfig, generate_csv_text
from mlgitops.errors import ConfigError
from mlgitops.image.bento import extract_bento, read_bento_info
from mlgitops.image.build import build_image
from mlgitops.image.buildah import Buildah
from mlgitops.image.run import RunningContainer, free_port, running_container, wait_http
from mlgitops.profile import load_profile
from tests.support.project import released_project

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
def bento_archive(container_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = release_archive()
    if archive is not None:
        return archive
    # A clean checkout has no archive (DVC keeps it out of Git): make one the way a user would.
    project = released_project(tmp_path_factory.mktemp("e2e") / "repo").root
    return project / load_params(project / "params.yaml").paths.bento_archive


def fixed_payload(bento_dir: Path, rows: int = 16) -> dict:
    """Generated transactions as a /predict body, typed by the bento's reference profile."""
    profile = load_profile(next(bento_dir.rglob("reference_profile.json")))
    text = generate_csv_text(GeneratorConfig(rows=rows, seed=4242))
    records = []
    for row in csv.DictReader(io.StringIO(text)):
        record = {}
        for name, feature in profile.features.items():
            value = row[name]
            if value == "":
                record[name] = None
            else:
                record[name] = float(value) if feature.kind == "numeric" else value
        records.append(record)
    return {"records": records}


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
    bento_dir = tmp_path / "bento"
    extract_bento(bento_archive, bento_dir)
    payload = fixed_payload(bento_dir)
    in_container = _post(release_container.base_url + "/predict", payload)
    with served_locally(bento_dir, tmp_path) as url:
        locally = _post(url + "/predict", payload)
    assert len(in_container["predictions"]) == len(payload["records"])
    assert in_container["model_version"] == locally["model_version"]
    for ours, theirs in zip(in_container["predictions"], locally["predictions"], strict=True):
        assert ours["label"] == theirs["label"]
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-9)
