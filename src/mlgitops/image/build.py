"""Build the runtime image of a bento with buildah, offline, from our own Containerfile.

Why not `bentoml containerize --backend buildah`? BentoML 1.4 generates its Dockerfile from the
bento's `docker`/`image` options: it starts from `python:3.11-slim` (a registry we cannot reach),
`apt-get install`s build-essential into the runtime image, then `pip install uv` and `uv pip
install` from PyPI inside the build (HTTPS there fails certificate checks). None of that can be
pointed at a local base and a wheelhouse without rewriting the template, so we keep a small
committed Containerfile that follows the same bento layout (`/home/bentoml/bento`, `/app/.venv`,
the bento's `env/docker/entrypoint.sh`) and installs only from the wheelhouse.

The image is `REPO:VERSION` with VERSION the bento version. Building a bento whose image is already
stored is a no-op; an image under that tag made from another bento is an error, never overwritten.
A rebuild (`force`) of the same bento on the same base gives the same image ID and manifest digest:
every time in it is the build epoch (see epoch.py), and nothing host-specific is recorded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlgitops.epoch import source_date_epoch
from mlgitops.errors import ImageBuildError
from mlgitops.image.base import BaseRecipe, ensure_base_image
from mlgitops.image.bento import BentoInfo, check_python, extract_bento, read_bento_info
from mlgitops.image.buildah import (
    ISOLATION,
    Buildah,
    image_digest,
    image_id,
    image_labels,
    image_size,
    require_buildah,
)
from mlgitops.image.cache import default_cache_dir
from mlgitops.image.proc import run
from mlgitops.image.wheelhouse import Wheelhouse, ensure_wheelhouse

LABEL_BENTO_TAG = "ai.mlgitops.bento-tag"
LABEL_BENTO_SHA256 = "ai.mlgitops.bento-archive-sha256"
LABEL_WHEELHOUSE = "ai.mlgitops.wheelhouse"
LABEL_BASE_NAME = "org.opencontainers.image.base.name"
LABEL_BASE_DIGEST = "org.opencontainers.image.base.digest"
BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class ImageResult:
    ref: str
    image_id: str
    bento_tag: str
    digest: str  # manifest digest in local storage
    built: bool
    size_bytes: int
    seconds: float
    base_ref: str | None = None
    wheelhouse: Path | None = None
    log: Path | None = None


def image_ref(repository: str, version: str) -> str:
    """`REPO:VERSION`; buildah stores an unqualified name under `localhost/`, so we do it too."""
    if not repository or ":" in repository.rsplit("/", 1)[-1] or "@" in repository:
        raise ImageBuildError(f"image repository {repository!r}: give it without tag or digest")
    first = repository.split("/", 1)[0]
    qualified = "/" in repository and ("." in first or ":" in first or first == "localhost")
    return f"{repository if qualified else 'localhost/' + repository}:{version}"


def containerfile_text() -> str:
    return resources.files("mlgitops.image").joinpath("Containerfile").read_text(encoding="utf-8")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # same filesystem as the cache: free
    except OSError:
        shutil.copy2(source, target)


def prepare_build_context(
    bento_archive: Path, ctx: Path, cache_dir: Path, *, python: str = sys.executable
) -> tuple[BentoInfo, Wheelhouse]:
    """Lay out a complete build context in `ctx` (see the Containerfile's header).

    Any OCI builder can build it: `buildah bud`, `podman build`, `docker build` (BuildKit, for
    `RUN --mount=type=bind`), with `--build-arg BASE_IMAGE=...`.
    """
    info = extract_bento(bento_archive, ctx / "bento")
    check_python(info)
    python_env = ctx / "bento" / "env" / "python"
    wheelhouse = ensure_wheelhouse(python_env, cache_dir, python=python)
    (ctx / "Containerfile").write_text(containerfile_text(), encoding="utf-8")
    wheel_dir = ctx / "install" / "wheels"
    wheel_dir.mkdir(parents=True)
    for wheel in wheelhouse.wheels:
        _link_or_copy(wheel, wheel_dir / wheel.name)
    shutil.copytree(python_env, ctx / "install" / "python")
    (ctx / "install" / "python" / "wheels").mkdir(exist_ok=True)
    return info, wheelhouse


def bud_command(
    buildah: Buildah,
    ctx: Path,
    ref: str,
    base_ref: str,
    labels: dict[str, str],
    *,
    offline: bool,
    timestamp: int = 0,
) -> list[str]:
    args: list[str] = [
        "bud",
        "--isolation", ISOLATION,
        "--format", "oci",
        "--pull-never",
        # Config `created`, history and every file time in the new layers; without it each build
        # gets a new image ID. No builder-version label: it says nothing about the content.
        "--timestamp", str(timestamp),
        "--identity-label=false",
        "--build-arg", f"BASE_IMAGE={base_ref}",
        "--build-arg", f"SOURCE_DATE_EPOCH={timestamp}",
        "--tag", ref,
        "--file", str(ctx / "Containerfile"),
    ]  # fmt: skip
    for key, value in sorted(labels.items()):
        args += ["--label", f"{key}={value}"]
    argv = buildah.argv(*args, ctx)
    # chroot isolation shares the host network; a fresh network namespace (loopback only, down)
    # is what proves the build needs none. Creating one takes root.
    if offline and os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--net", *argv]
    return argv


def base_for_build(
    buildah: Buildah, cache_dir: Path, base_image: str | None, timestamp: int
) -> tuple[str, dict[str, str]]:
    """The base to build on, stored before the build (the debootstrap one made, or `base_image`
    pulled, so the build itself runs with no network), and the labels naming it."""
    if base_image is None:
        base_ref = ensure_base_image(cache_dir, BaseRecipe(timestamp=timestamp), buildah).ref
    else:
        base_ref = base_image
        if not buildah.image_exists(base_ref):
            buildah("pull", base_ref, what=f"pull base image {base_ref}", timeout=900)
    base = buildah.inspect_image(base_ref)
    if base is None:
        raise ImageBuildError(f"base image {base_ref} is not in buildah's storage")
    # The tag names the recipe; the digest says which bytes it stood for at build time.
    return base_ref, {LABEL_BASE_NAME: base_ref, LABEL_BASE_DIGEST: image_digest(base)}


def build_image(
    bento_archive: Path,
    image_repository: str,
    version: str | None = None,
    *,
    cache_dir: Path | None = None,
    base_image: str | None = None,
    force: bool = False,
    python: str = sys.executable,
    offline: bool = True,
) -> ImageResult:
    """Build `image_repository:VERSION` from a bento archive; skip when that image is stored.

    `version` defaults to the bento version and must equal it when given. `base_image` replaces
    the debootstrap base (e.g. `python:3.11-slim`, pulled; needs a registry). `offline` runs the
    build in an empty network namespace. `force` rebuilds over an existing image.
    """
    start = time.monotonic()
    require_buildah()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    bento_archive = Path(bento_archive)
    info = read_bento_info(bento_archive)
    if version is not None and version != info.version:
        raise ImageBuildError(
            f"image version {version!r} is not the version {info.version!r} of {bento_archive}"
        )
    check_python(info)
    ref = image_ref(image_repository, info.version)
    buildah = Buildah.for_cache(cache_dir)

    existing = buildah.inspect_image(ref)
    if existing is not None and not force:
        found = image_labels(existing).get(LABEL_BENTO_TAG)
        if found != info.tag:
            raise ImageBuildError(
                f"{ref} exists but was built from bento {found!r}, not {info.tag!r}; "
                "remove it or pick another repository"
            )
        return ImageResult(
            ref, image_id(existing), info.tag, image_digest(existing), built=False,
            size_bytes=image_size(existing), seconds=time.monotonic() - start,
        )  # fmt: skip

    (cache_dir / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ctx-", dir=cache_dir / "tmp") as tmp:
        ctx = Path(tmp)
        _, wheelhouse = prepare_build_context(bento_archive, ctx, cache_dir, python=python)
        timestamp = source_date_epoch()
        base_ref, base_labels = base_for_build(buildah, cache_dir, base_image, timestamp)
        labels = {
            "org.opencontainers.image.title": info.name,
            "org.opencontainers.image.version": info.version,
            **base_labels,
            LABEL_BENTO_TAG: info.tag,
            LABEL_BENTO_SHA256: file_sha256(bento_archive),
            LABEL_WHEELHOUSE: wheelhouse.key,
        }
        log = cache_dir / "logs" / f"build-{info.name}-{info.version}.log"
        cmd = bud_command(buildah, ctx, ref, base_ref, labels, offline=offline, timestamp=timestamp)
        run(cmd, what=f"build image {ref}", timeout=BUILD_TIMEOUT, log=log)

    built = buildah.inspect_image(ref)
    if built is None:
        raise ImageBuildError(f"buildah reported success but {ref} is not in its storage")
    return ImageResult(
        ref, image_id(built), info.tag, image_digest(built), built=True,
        size_bytes=image_size(built), seconds=time.monotonic() - start, base_ref=base_ref,
        wheelhouse=wheelhouse.path, log=log,
    )  # fmt: skip
