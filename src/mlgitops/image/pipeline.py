"""The pipeline image of a commit: the project and its whole locked closure, built with buildah.

Dask workers unpickle the functions a client sends them, so they must import the same code and
the same pins as the client: the scheduler and the workers of k8s/dask, and the monitor's
CronJob, all run this image. It is the serving image's recipe (the debootstrap base, a
wheelhouse made outside the build, pip run from its wheel with no network, unchecked-hash pycs,
the build epoch as every time) with other contents (Containerfile.pipeline):

- every pin of `requirements.lock`, not only the bento's serving closure; the wheelhouse is
  fetched with `pip wheel --require-hashes -r requirements.lock`, so every file pip downloads
  (wheel or source release) is one the lock names;
- the project's own wheel, built from the commit's files (`git archive`, never the working
  tree's uncommitted edits);
- those files as the working directory, plus the DVC-tracked inputs of `mlgitops monitor` that
  Git does not hold (the reference profile), checked against the commit's dvc.lock.

The image is `REPO:<commit, 12 hex digits>`; REPO defaults to `pipeline` beside the serving
image's repository (package.image_repository), the name k8s/dask/kustomization.yaml uses.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlgitops import git
from mlgitops.config import Params, load_params
from mlgitops.epoch import source_date_epoch
from mlgitops.errors import ImageBuildError
from mlgitops.image.build import (
    LABEL_WHEELHOUSE,
    _link_or_copy,
    base_for_build,
    bud_command,
    image_ref,
)
from mlgitops.image.buildah import (
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
from mlgitops.io import file_md5, file_sha256
from mlgitops.revision import out_md5_in_lock

LOCK_FILE = "requirements.lock"
# The lock's pins without hashes: what the build installs from the checked wheelhouse.
PINS_FILE = "requirements.txt"
PIPELINE_REPOSITORY = "pipeline"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_LOCK_SHA256 = "ai.mlgitops.requirements-lock-sha256"
BUILD_TIMEOUT = 3600.0
# `name==version` at the start of a line of a `uv pip compile` lock (hashes follow on `\` lines).
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)==([^\s;\\]+)", re.MULTILINE)


@dataclass(frozen=True)
class PipelineImage:
    ref: str
    image_id: str
    commit: str
    digest: str  # manifest digest in local storage
    built: bool
    size_bytes: int
    seconds: float
    base_ref: str | None = None
    wheelhouse: Path | None = None
    log: Path | None = None


def pipeline_containerfile_text() -> str:
    files = resources.files("mlgitops.image")
    return files.joinpath("Containerfile.pipeline").read_text(encoding="utf-8")


def pipeline_repository(image_repository: str) -> str:
    """`pipeline` beside the serving image: registry.example.com/mlgitops/fraud-detector ->
    registry.example.com/mlgitops/pipeline."""
    parent, _, _ = image_repository.rpartition("/")
    return f"{parent}/{PIPELINE_REPOSITORY}" if parent else PIPELINE_REPOSITORY


def lock_pins(lock_text: str, source: str = LOCK_FILE) -> list[str]:
    """The lock's pins as `name==version` lines, without hashes or comments: what the build
    installs. The wheelhouse was fetched with the hashes: a wheel pip builds from a source
    release has bytes of its own, which no lock can name, so the build cannot check them again."""
    pins = [f"{name}=={version}" for name, version in _PIN.findall(lock_text)]
    if not pins:
        raise ImageBuildError(f"{source}: no `name==version` pins (is it a uv/pip-compile lock?)")
    names = [pin.split("==")[0].lower() for pin in pins]
    if len(set(names)) != len(names):
        raise ImageBuildError(f"{source}: a package is pinned twice")
    if "--hash=sha256:" not in lock_text:
        raise ImageBuildError(f"{source}: has no hashes; the image installs with --require-hashes")
    return pins


def monitor_inputs(params: Params) -> list[Path]:
    """What `mlgitops monitor` reads from its working directory besides Git-tracked files:
    paths relative to the project root."""
    return [Path(params.paths.profile), Path(params.paths.score_reference)]


def add_dvc_outputs(root: Path, project: Path, paths: list[Path], dvc_lock_text: str) -> None:
    """Copy each `path` that Git does not hold from the working tree into `project`, after
    checking its bytes are the ones the commit's dvc.lock records."""
    for path in paths:
        if (project / path).exists():
            continue  # tracked by Git: already in the commit's files
        expected = out_md5_in_lock(dvc_lock_text, path.as_posix(), "dvc.lock")
        source = root / path
        if expected is None:
            raise ImageBuildError(f"{path}: neither in Git nor an output in dvc.lock")
        if not source.is_file():
            raise ImageBuildError(f"{path}: missing; run `dvc pull {path}` (or `dvc repro`)")
        if file_md5(source) != expected:
            raise ImageBuildError(
                f"{path}: not the file dvc.lock records at this commit (md5 {expected}); "
                "run `dvc checkout` or commit the release first"
            )
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, project / path)


def project_snapshot(root: Path, commit: str, dest: Path, params: Params) -> str:
    """The commit's files in `dest` plus the monitor's DVC-tracked inputs; its lock's text."""
    dest.mkdir(parents=True)
    git.extract_tree(root, commit, ".", dest)
    lock = dest / LOCK_FILE
    if not lock.is_file():
        raise ImageBuildError(f"{commit[:12]}: has no {LOCK_FILE}")
    dvc_lock = dest / "dvc.lock"
    if not dvc_lock.is_file():
        raise ImageBuildError(f"{commit[:12]}: has no dvc.lock (run `dvc repro` and commit)")
    add_dvc_outputs(root, dest, monitor_inputs(params), dvc_lock.read_text(encoding="utf-8"))
    return lock.read_text(encoding="utf-8")


def build_project_wheel(source: Path, out: Path, python: str, log: Path) -> Path:
    out.mkdir(parents=True)
    run([python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(out), str(source)],
        what="build the project's wheel", timeout=600, log=log,
        env={"SOURCE_DATE_EPOCH": str(source_date_epoch())})  # fmt: skip
    wheels = sorted(out.glob("mlgitops-*.whl"))
    if len(wheels) != 1:
        raise ImageBuildError(f"building the project's wheel left {len(wheels)} wheels in {out}")
    return wheels[0]


def lay_out_context(
    ctx: Path, lock_text: str, wheels: list[Path], project_wheel: Path, project: Path
) -> None:
    """The build context Containerfile.pipeline expects (see its header)."""
    (ctx / "Containerfile").write_text(pipeline_containerfile_text(), encoding="utf-8")
    install = ctx / "install"
    (install / "wheels").mkdir(parents=True)
    (install / "project").mkdir()
    (install / LOCK_FILE).write_text(lock_text, encoding="utf-8")
    (install / PINS_FILE).write_text("\n".join(lock_pins(lock_text)) + "\n", encoding="utf-8")
    for wheel in wheels:
        _link_or_copy(wheel, install / "wheels" / wheel.name)
    shutil.copyfile(project_wheel, install / "project" / project_wheel.name)
    if project != ctx / "project":
        shutil.copytree(project, ctx / "project", symlinks=True)


def prepare_pipeline_context(
    root: Path, commit: str, ctx: Path, cache_dir: Path, params: Params, *, python: str
) -> Wheelhouse:
    """A complete build context for the pipeline image of `commit` in `ctx`."""
    project = ctx / "project"
    lock_text = project_snapshot(root, commit, project, params)
    lock_pins(lock_text, f"{commit[:12]}:{LOCK_FILE}")  # refuses a lock the build cannot use
    requirements = ctx / "wheelhouse-request"
    requirements.mkdir()
    (requirements / "requirements.txt").write_text(lock_text, encoding="utf-8")
    # pip checks every file it fetches, wheel or source, against the lock's hashes.
    wheelhouse = ensure_wheelhouse(requirements, cache_dir, python=python, hashed=True)
    shutil.rmtree(requirements)
    log = cache_dir / "logs" / f"pipeline-wheel-{commit[:12]}.log"
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=cache_dir / "tmp") as tmp:
        project_wheel = build_project_wheel(project, Path(tmp) / "out", python, log)
        lay_out_context(ctx, lock_text, wheelhouse.wheels, project_wheel, project)
    # setuptools' build leftovers must not reach the image.
    for leftover in ("build", "src/mlgitops.egg-info"):
        shutil.rmtree(project / leftover, ignore_errors=True)
    return wheelhouse


def build_pipeline_image(
    root: Path | None = None,
    repository: str | None = None,
    *,
    rev: str = "HEAD",
    cache_dir: Path | None = None,
    base_image: str | None = None,
    force: bool = False,
    python: str = sys.executable,
    offline: bool = True,
) -> PipelineImage:
    """Build `REPOSITORY:<commit12>` for `rev` of the repository at `root`; skip when stored.

    The monitor's DVC-tracked inputs come from the working tree and must be those `rev`'s
    dvc.lock records. `repository` defaults to `pipeline` beside package.image_repository.
    """
    start = time.monotonic()
    root = git.repo_root(root)
    commit = git.resolve_commit(root, rev)
    params = load_params(root / "params.yaml")
    require_buildah()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    ref = image_ref(repository or pipeline_repository(params.package.image_repository), commit[:12])
    buildah = Buildah.for_cache(cache_dir)

    existing = buildah.inspect_image(ref)
    if existing is not None and not force:
        found = image_labels(existing).get(LABEL_REVISION)
        if found != commit:
            raise ImageBuildError(
                f"{ref} exists but was built from commit {found!r}, not {commit}; "
                "remove it or pick another repository"
            )
        return PipelineImage(
            ref, image_id(existing), commit, image_digest(existing), built=False,
            size_bytes=image_size(existing), seconds=time.monotonic() - start,
        )  # fmt: skip

    (cache_dir / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipeline-ctx-", dir=cache_dir / "tmp") as tmp:
        ctx = Path(tmp)
        wheelhouse = prepare_pipeline_context(root, commit, ctx, cache_dir, params, python=python)
        timestamp = source_date_epoch()
        base_ref, base_labels = base_for_build(buildah, cache_dir, base_image, timestamp)
        lock_sha256 = file_sha256(ctx / "install" / LOCK_FILE)
        labels = {
            "org.opencontainers.image.title": "mlgitops-pipeline",
            "org.opencontainers.image.version": commit[:12],
            LABEL_REVISION: commit,
            **base_labels,
            LABEL_LOCK_SHA256: lock_sha256,
            LABEL_WHEELHOUSE: wheelhouse.key,
        }
        log = cache_dir / "logs" / f"build-pipeline-{commit[:12]}.log"
        cmd = bud_command(buildah, ctx, ref, base_ref, labels, offline=offline, timestamp=timestamp)
        run(cmd, what=f"build image {ref}", timeout=BUILD_TIMEOUT, log=log)

    built = buildah.inspect_image(ref)
    if built is None:
        raise ImageBuildError(f"buildah reported success but {ref} is not in its storage")
    return PipelineImage(
        ref, image_id(built), commit, image_digest(built), built=True,
        size_bytes=image_size(built), seconds=time.monotonic() - start, base_ref=base_ref,
        wheelhouse=wheelhouse.path, log=log,
    )  # fmt: skip
