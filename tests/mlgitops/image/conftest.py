"""Fixtures for the image tests: a trivial bento of our own, the shared cache, buildah checks.

Container tests share the project cache (`$MLGITOPS_CACHE`, else ~/.cache/mlgitops) on purpose:
the debootstrap base and the wheelhouse are made once per machine, as for a developer, and the
buildah storage lives there too. Each session's toy bento gets a fresh version, so its first build
is a real build and its image is removed again at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgitops.image.buildah import Buildah
from mlgitops.image.cache import default_cache_dir

TOY_SERVICE = """
import bentoml


@bentoml.service
class Toy:
    @bentoml.api
    def predict(self, x: float) -> float:
        return x * 2
"""

TOY_BENTOFILE = """
service: "service:Toy"
include: ["service.py"]
python:
  lock_packages: false
"""


def _missing_tools() -> list[str]:
    return [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]


@pytest.fixture(scope="session")
def container_tools() -> None:
    """Skip unless buildah and debootstrap are installed and we are root (debootstrap needs it)."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install -y {' '.join(missing)})")
    if os.geteuid() != 0:
        pytest.skip("debootstrap and buildah's chroot isolation need root")


@pytest.fixture(scope="session")
def image_cache() -> Path:
    return default_cache_dir()


@pytest.fixture(scope="session")
def buildah(image_cache: Path) -> Buildah:
    return Buildah.for_cache(image_cache)


def build_toy_bento(workdir: Path, version: str) -> Path:
    """Build and export the toy bento with the `bentoml` CLI in a private BENTOML_HOME."""
    src = workdir / "src"
    src.mkdir(parents=True)
    (src / "service.py").write_text(TOY_SERVICE, encoding="utf-8")
    (src / "bentofile.yaml").write_text(TOY_BENTOFILE, encoding="utf-8")
    env = {**os.environ, "BENTOML_HOME": str(workdir / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    bentoml = [sys.executable, "-m", "bentoml"]
    subprocess.run([*bentoml, "build", "--version", version, "-o", "tag"], cwd=src, env=env,
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    archive = workdir / "toy.tar"
    subprocess.run([*bentoml, "export", f"toy:{version}", str(archive)], cwd=src, env=env,
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return archive


@pytest.fixture(scope="session")
def toy_version() -> str:
    return f"t{uuid.uuid4().hex[:11]}"


@pytest.fixture(scope="session")
def toy_bento(tmp_path_factory: pytest.TempPathFactory, toy_version: str) -> Path:
    return build_toy_bento(tmp_path_factory.mktemp("toy-bento"), toy_version)


@pytest.fixture(scope="session")
def toy_repository(container_tools: None, buildah: Buildah, toy_version: str) -> Iterator[str]:
    """The repository the toy image is built into; its image is removed after the session."""
    repository = "localhost/mlgitops-test/toy"
    yield repository
    if buildah.image_exists(f"{repository}:{toy_version}"):
        buildah.remove_image(f"{repository}:{toy_version}")
