"""Reading and unpacking a bento archive (the file `bentoml export` writes).

A bento is `bento.yaml` + `src/` + `models/` + `env/python/requirements.txt` (+ `env/docker/`);
the image puts it at /home/bentoml/bento, where `bentoml containerize` puts it too.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlgitops.errors import ArtifactError, ImageBuildError

# The base image's interpreter; a bento locked for another Python would not install there.
TARGET_PYTHON = "3.11"


@dataclass(frozen=True)
class BentoInfo:
    name: str
    version: str
    python_version: str | None

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"


def parse_bento_yaml(text: str, source: str = "bento.yaml") -> BentoInfo:
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ArtifactError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("version"):
        raise ArtifactError(f"{source}: no bento name/version (is this a bento archive?)")
    image = raw.get("image") or {}
    python_version = image.get("python_version") if isinstance(image, dict) else None
    return BentoInfo(str(raw["name"]), str(raw["version"]), python_version and str(python_version))


def check_python(info: BentoInfo) -> None:
    if info.python_version and info.python_version != TARGET_PYTHON:
        raise ImageBuildError(
            f"bento {info.tag} is locked for Python {info.python_version}; the base image runs "
            f"Python {TARGET_PYTHON}"
        )


def _open(archive: Path) -> tarfile.TarFile:
    if not archive.is_file():
        raise ArtifactError(f"bento archive not found: {archive}")
    try:
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as error:
        raise ArtifactError(f"{archive}: not a readable bento archive: {error}") from None


def read_bento_info(archive: Path) -> BentoInfo:
    """Name and version from the archive's bento.yaml, without unpacking the rest."""
    with _open(archive) as tar:
        for member in tar:
            if os.path.normpath(member.name) == "bento.yaml" and member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    return parse_bento_yaml(handle.read().decode("utf-8"), f"{archive}:bento.yaml")
    raise ArtifactError(f"{archive}: has no bento.yaml (is this a bento archive?)")


def extract_bento(archive: Path, dest: Path) -> BentoInfo:
    """Unpack `archive` into `dest` with world-readable modes (the server runs as a non-root user
    and must read files that root owns)."""
    dest.mkdir(parents=True, exist_ok=True)
    with _open(archive) as tar:
        # "data" refuses absolute paths, links out of `dest` and device files.
        tar.extractall(dest, filter="data")
    for path in [dest, *dest.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if mode & 0o111 else 0o644)
    bento_yaml = dest / "bento.yaml"
    if not bento_yaml.is_file():
        raise ArtifactError(f"{archive}: has no bento.yaml (is this a bento archive?)")
    return parse_bento_yaml(bento_yaml.read_text(encoding="utf-8"), f"{archive}:bento.yaml")
