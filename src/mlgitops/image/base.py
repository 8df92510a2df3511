"""The base image: a minimal Debian bookworm root filesystem with Python 3.11, made by debootstrap.

Why not `python:3.11-slim`? The build must run with no registry but PyPI/Debian reachable, so the
base is made from Debian packages with `debootstrap --variant=minbase` and imported into buildah.
Bookworm's python3.11 is the same minor version as the project's interpreter, so wheels built here
install there unchanged. The image is tagged `localhost/mlgitops-base:<suite>-<recipe key>`; the key
hashes every input of the recipe, so a changed recipe makes a new base and an unchanged one is
reused. Debootstrap takes the mirror's current point release: the key says what was asked for, not
the byte content (point a recipe at a snapshot.debian.org URL for a closer pin). The commit is
stamped with the recipe's timestamp, so only the root filesystem's content decides the base digest;
docs/image.md says what two debootstrap runs still differ in.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlgitops.epoch import source_date_epoch
from mlgitops.errors import ImageBuildError
from mlgitops.image.buildah import Buildah, require_buildah
from mlgitops.image.cache import file_lock, recipe_key
from mlgitops.image.proc import run

MIRROR_ENV = "MLGITOPS_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_REPOSITORY = "localhost/mlgitops-base"
# Bump when the code below changes what a recipe produces (the key must change with it).
RECIPE_REVISION = 3

# Removed after debootstrap: package caches and documentation nothing at run time reads.
# Copyright files stay: they are the licences of what the image ships.
PRUNE = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "var/log/*",
    # ldconfig's speed-up cache records inode numbers and ctimes: different on every run.
    "var/cache/ldconfig/aux-cache",
)
# Under usr/share/doc/<package>/ only these survive (the licence texts).
DOC_KEEP = ("copyright",)

# Run by the rootfs's own python3.11: every pyc the packages compiled (py3compile, timestamp
# based) is rewritten as an unchecked-hash pyc of the same source. The commit stamps every file
# with the build epoch, which would make timestamp pycs stale: each import would recompile.
RECOMPILE_PYC = """
import importlib.util, pathlib, py_compile, sys
for pyc in sorted(pathlib.Path("/usr/lib").glob("python3*/**/__pycache__/*.pyc")):
    name = pyc.name.split(".")[0] + ".py"
    source = pyc.parent.parent / name
    if source.is_file() and importlib.util.cache_from_source(str(source)) == str(pyc):
        py_compile.compile(str(source), str(pyc), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


@dataclass(frozen=True)
class BaseRecipe:
    suite: str = "bookworm"
    mirror: str = field(default_factory=lambda: os.environ.get(MIRROR_ENV, DEFAULT_MIRROR))
    variant: str = "minbase"
    # python3.11 brings the full standard library (ssl, sqlite3, venv without ensurepip); no pip,
    # no compilers. The interpreter is /usr/bin/python3.11.
    packages: tuple[str, ...] = ("python3.11",)
    prune: tuple[str, ...] = PRUNE
    doc_keep: tuple[str, ...] = DOC_KEEP
    env: tuple[tuple[str, str], ...] = (
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("LANG", "C.UTF-8"),
    )
    # Creation time of the image and of every file in its layer (SOURCE_DATE_EPOCH, else 0).
    timestamp: int = field(default_factory=source_date_epoch)
    revision: int = RECIPE_REVISION

    @property
    def key(self) -> str:
        return recipe_key(asdict(self))

    @property
    def image_ref(self) -> str:
        return f"{BASE_REPOSITORY}:{self.suite}-{self.key}"


@dataclass(frozen=True)
class BaseImage:
    ref: str
    built: bool
    seconds: float


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def prune_rootfs(rootfs: Path, patterns: tuple[str, ...], doc_keep: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in rootfs.glob(pattern):
            _remove(path)
    for entry in rootfs.glob("usr/share/doc/*/*"):
        if entry.name not in doc_keep:
            _remove(entry)
    # The host's resolver and name leak in through debootstrap; the runtime supplies its own.
    (rootfs / "etc" / "resolv.conf").write_text("")
    (rootfs / "etc" / "hostname").write_text("localhost\n")


def recompile_bytecode(rootfs: Path) -> None:
    python = "/usr/bin/python3.11"
    # PYTHONHASHSEED fixes the order of set constants in the pycs; nothing else is written.
    env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
    run(["chroot", str(rootfs), python, "-c", RECOMPILE_PYC], env=env,
        what="recompile the base's bytecode as hash-based pycs", timeout=600)  # fmt: skip


def debootstrap(recipe: BaseRecipe, target: Path, log: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (apt-get install -y debootstrap)")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root to create device nodes and chown files")
    cmd = [
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(target),
        recipe.mirror,
    ]
    # Package scripts that stamp dates (pwconv's password-change day in /etc/shadow) use the
    # build epoch, not today.
    env = {"SOURCE_DATE_EPOCH": str(recipe.timestamp)}
    run(cmd, what="debootstrap the base root filesystem", timeout=1200, log=log, env=env)


def import_rootfs(buildah: Buildah, rootfs: Path, recipe: BaseRecipe, workdir: Path) -> None:
    """Turn a root filesystem directory into a one-layer image tagged `recipe.image_ref`."""
    archive = workdir / "rootfs.tar"
    # A tar keeps numeric owners, modes and device nodes exactly; `buildah add` unpacks it as is.
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    container = buildah("from", "--pull-never", "scratch", what="create base container").strip()
    try:
        buildah("add", container, archive, "/", what="add base root filesystem", timeout=600)
        config: list[str] = []
        for name, value in recipe.env:
            config += ["--env", f"{name}={value}"]
        config += ["--label", f"ai.mlgitops.base.recipe={recipe.key}"]
        config += ["--label", f"ai.mlgitops.base.suite={recipe.suite}"]
        config += ["--cmd", "/bin/bash"]
        buildah("config", *config, container, what="configure base image")
        # No builder-version label: it would tell two buildah versions' bases apart for nothing.
        buildah("commit", "--quiet", "--timestamp", str(recipe.timestamp), "--identity-label=false",
                container, recipe.image_ref, what="commit base image", timeout=600)  # fmt: skip
    finally:
        buildah("rm", container, what="remove base working container")


def ensure_base_image(
    cache_dir: Path, recipe: BaseRecipe | None = None, buildah: Buildah | None = None
) -> BaseImage:
    """The base image for `recipe`, made (debootstrap + import) only when it is not stored yet."""
    recipe = recipe or BaseRecipe()
    require_buildah()
    buildah = buildah or Buildah.for_cache(cache_dir)
    start = time.monotonic()
    with file_lock(cache_dir / "locks" / f"base-{recipe.key}.lock"):
        if buildah.image_exists(recipe.image_ref):
            return BaseImage(recipe.image_ref, built=False, seconds=time.monotonic() - start)
        work_parent = cache_dir / "tmp"
        work_parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="base-", dir=work_parent) as tmp:
            workdir = Path(tmp)
            rootfs = workdir / "rootfs"
            debootstrap(recipe, rootfs, log=cache_dir / "logs" / f"debootstrap-{recipe.key}.log")
            prune_rootfs(rootfs, recipe.prune, recipe.doc_keep)
            recompile_bytecode(rootfs)
            import_rootfs(buildah, rootfs, recipe, workdir)
    return BaseImage(recipe.image_ref, built=True, seconds=time.monotonic() - start)
