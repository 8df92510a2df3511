"""Which bento to build: the release of the working tree, or of any Git revision.

The release record (release.json, tracked in Git) names the bento and the image `REPO:VERSION`;
params.yaml names the DVC-tracked bento archive. For `--rev`, both are read with `git show` and
the archive through `dvc.api.open(rev=...)` into the image cache, so the working tree (and its
checkout) is never touched.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlgitops.config import DEFAULT_PARAMS_FILE, Params, load_params, parse_params
from mlgitops.errors import ArtifactError, GitError
from mlgitops.image.proc import run
from mlgitops.image.push import split_tag
from mlgitops.release import ReleaseRecord, load_release


@dataclass(frozen=True)
class BentoSource:
    archive: Path
    image_repository: str
    version: str
    bento_tag: str
    commit: str | None  # None: the working tree


def git_root(start: Path | None = None) -> Path:
    out = run(
        ["git", "rev-parse", "--show-toplevel"],
        what="find the Git repository",
        error=GitError,
        cwd=start,
        timeout=30,
    )
    return Path(out.stdout.strip())


def resolve_commit(root: Path, rev: str) -> str:
    out = run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        what=f"resolve Git revision {rev!r}",
        error=GitError,
        cwd=root,
        timeout=30,
    )
    return out.stdout.strip()


def git_show(root: Path, commit: str, path: Path) -> str:
    return run(
        ["git", "show", f"{commit}:{path.as_posix()}"],
        what=f"read {path} at {commit[:12]}",
        error=GitError,
        cwd=root,
        timeout=30,
    ).stdout


def params_at(root: Path, commit: str) -> Params:
    text = git_show(root, commit, DEFAULT_PARAMS_FILE)
    return parse_params(yaml.safe_load(text), Path(f"{commit[:12]}:{DEFAULT_PARAMS_FILE}"))


def release_at(root: Path, commit: str, path: Path) -> ReleaseRecord:
    try:
        return ReleaseRecord.model_validate_json(git_show(root, commit, path))
    except ValueError as error:
        raise ArtifactError(f"{commit[:12]}:{path}: not a valid release record: {error}") from None


def fetch_archive(root: Path, commit: str, path: Path, cache_dir: Path) -> Path:
    """The bento archive of `commit`, copied once into the cache through DVC."""
    import dvc.api  # heavy; only `--rev` needs it

    target = cache_dir / "bentos" / commit / path.name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".fetch-", delete=False) as out:
        partial = Path(out.name)
        try:
            with dvc.api.open(str(path), repo=str(root), rev=commit, mode="rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        except Exception as error:  # dvc raises many kinds; all mean "not available"
            partial.unlink(missing_ok=True)
            raise ArtifactError(
                f"bento archive {path} at {commit[:12]} is not available through DVC "
                f"(dvc pull, or run the pipeline at that commit): {type(error).__name__}: {error}"
            ) from None
    partial.replace(target)
    return target


def _source(archive: Path, record: ReleaseRecord, commit: str | None) -> BentoSource:
    repository, version = split_tag(record.image)
    if version != record.bento_version:
        raise ArtifactError(
            f"release image {record.image} is not tagged with bento version {record.bento_version}"
        )
    return BentoSource(archive, repository, version, record.bento_tag, commit)


def resolve_bento_source(rev: str | None, cache_dir: Path, root: Path | None = None) -> BentoSource:
    """The bento archive and image name of the working tree (`rev` None) or of `rev`."""
    if rev is None:
        params = load_params()
        archive = params.paths.bento_archive
        if not archive.is_file():
            raise ArtifactError(f"{archive}: no bento archive (run `dvc repro` first)")
        return _source(archive, load_release(params.paths.release), None)
    root = root or git_root()
    commit = resolve_commit(root, rev)
    params = params_at(root, commit)
    record = release_at(root, commit, params.paths.release)
    return _source(
        fetch_archive(root, commit, params.paths.bento_archive, cache_dir), record, commit
    )
