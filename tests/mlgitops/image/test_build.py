"""Build the toy bento's image for real with buildah, rebuild it as a no-op, and run it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlgitops.epoch import source_date_epoch
from mlgitops.errors import ImageBuildError
from mlgitops.image.build import LABEL_BASE_DIGEST, LABEL_BASE_NAME, LABEL_BENTO_TAG, build_image
from mlgitops.image.buildah import Buildah, image_config, image_digest, image_id, image_labels
from mlgitops.image.run import running_container

pytestmark = pytest.mark.container


def _post_json(url: str, payload: object) -> object:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def toy_image(toy_bento: Path, toy_repository: str, image_cache: Path) -> str:
    # Fresh machine: debootstrap (~35 s) + wheelhouse + build; warm cache: the build only.
    result = build_image(toy_bento, toy_repository, cache_dir=image_cache)
    assert result.built
    return result.ref


@pytest.mark.timeout(900)
def test_build_tags_the_bento_version_and_labels_the_bento(
    toy_image: str, toy_version: str, buildah: Buildah
) -> None:
    assert toy_image.endswith(f":{toy_version}")
    info = buildah.inspect_image(toy_image)
    assert info is not None
    assert image_labels(info)[LABEL_BENTO_TAG] == f"toy:{toy_version}"
    config = image_config(info)
    # Numeric, non-root: what Kubernetes' runAsNonRoot can check without /etc/passwd.
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/home/bentoml/bento"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["BENTOML_HOME"].startswith("/tmp/")
    assert env["HOME"] == "/tmp"


@pytest.mark.timeout(120)
def test_same_bento_again_is_a_no_op(
    toy_image: str, toy_bento: Path, toy_repository: str, image_cache: Path, buildah: Buildah
) -> None:
    before = buildah.inspect_image(toy_image)
    assert before is not None
    start = time.monotonic()
    again = build_image(toy_bento, toy_repository, cache_dir=image_cache)
    assert not again.built
    assert again.ref == toy_image
    assert again.image_id == f"sha256:{before['FromImageID']}"
    assert time.monotonic() - start < 10


@pytest.mark.timeout(300)
def test_forced_rebuild_gives_the_same_image_id_and_manifest_digest(
    toy_image: str, toy_bento: Path, toy_repository: str, image_cache: Path, buildah: Buildah
) -> None:
    """One bento, one image: a rebuild from scratch on the same base is bit-for-bit the same."""
    first = buildah.inspect_image(toy_image)
    assert first is not None
    again = build_image(toy_bento, toy_repository, cache_dir=image_cache, force=True)
    assert again.built
    assert again.image_id == image_id(first)
    assert again.digest == image_digest(first)
    # Stamped with the build epoch (SOURCE_DATE_EPOCH, else 0), not the time of the build.
    epoch = datetime.fromtimestamp(source_date_epoch(), UTC)
    assert first["OCIv1"]["created"] == epoch.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The image says which bytes its base was, not only the base's name.
    labels = image_labels(first)
    base = buildah.inspect_image(labels[LABEL_BASE_NAME])
    assert base is not None
    assert labels[LABEL_BASE_DIGEST] == image_digest(base)


@pytest.mark.timeout(120)
def test_version_must_be_the_bento_version(
    toy_bento: Path, toy_repository: str, image_cache: Path
) -> None:
    with pytest.raises(ImageBuildError, match="not the version"):
        build_image(toy_bento, toy_repository, "other", cache_dir=image_cache)


@pytest.mark.timeout(300)
def test_image_contents_are_lean(toy_image: str, buildah: Buildah) -> None:
    """No pip, no compiler, no wheelhouse left in the image; the bento is where BentoML puts it."""
    script = (
        "import importlib.util, os, shutil, sys;"
        "print(json.dumps({"
        "'pip': importlib.util.find_spec('pip') is not None,"
        "'cc': [c for c in ('gcc', 'cc', 'make') if shutil.which(c)],"
        "'wheelhouse': os.path.exists('/mnt/install'),"
        "'bento': sorted(os.listdir('/home/bentoml/bento')),"
        "'uid': os.getuid(), 'python': sys.version_info[:2]}))"
    )
    container = buildah("from", "--pull-never", toy_image, what="create").strip()
    try:
        out = buildah(
            "run", "--isolation", "chroot", container, "--",
            "/app/.venv/bin/python", "-c", "import json;" + script, what="inspect contents",
        )  # fmt: skip
    finally:
        buildah("rm", container, what="remove")
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["pip"] is False
    assert facts["cc"] == []
    assert facts["wheelhouse"] is False
    assert {"bento.yaml", "src", "env"} <= set(facts["bento"])
    assert facts["uid"] == 10001
    assert facts["python"] == [3, 11]


@pytest.mark.timeout(300)
def test_running_image_serves_the_bento(toy_image: str, buildah: Buildah) -> None:
    # buildah run under chroot isolation shares the host network: no port mapping needed.
    with running_container(toy_image, buildah, startup_timeout=120) as container:
        assert _post_json(container.base_url + "/predict", {"x": 21}) == 42
        with urllib.request.urlopen(container.base_url + "/livez", timeout=10) as response:
            assert response.status == 200
    # Stopped for good: the port answers no more.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(container.base_url + "/livez", timeout=2)
