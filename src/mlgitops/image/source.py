"""Which bento to build: the release of the working tree, or of any Git revision.

The release record (release.json, tracked in Git) names the bento and the image `REPO:VERSION`;
params.yaml names the DVC-tracked bento archive. For `--rev`, both are read from Git objects
(`mlgitops.revision`, the reader deploy uses too) and the archive through
`dvc.api.open(rev=...)` into the image cache, so the working tree (and its checkout) is never
touched.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlgitops.config import DEFAULT_PARAMS_FILE, load_params
from mlgitops.errors import ArtifactError, ConfigError
from mlgitops.git import repo_root, resolve_commit
from mlgitops.image.push import split_tag
from mlgitops.release import ReleaseRecord, load_release
from mlgitops.revision import params_at, release_at, setting


@dataclass(frozen=True)
class BentoSource:
    archive: Path
    image_repository: str
    version: str
    bento_tag: str
    commit: str | None  # None: the working tree


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
    root = root or repo_root()
    commit = resolve_commit(root, rev)
    params = params_at(root, commit)
    record = release_at(root, commit, params)
    archive = setting(params, commit, "paths", "bento_archive")
    if archive is None:
        raise ConfigError(f"{commit[:12]}:{DEFAULT_PARAMS_FILE}: no paths.bento_archive")
    return _source(fetch_archive(root, commit, Path(archive), cache_dir), record, commit)
