"""`--rev`: the release and bento archive of a Git revision, read without touching the work tree."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from mlgitops.errors import ArtifactError, GitError
from mlgitops.image.source import resolve_bento_source
from tests.support.project import raw_params, run

RELEASE = {
    "bento_name": "fraud-detector",
    "bento_version": "aaaaaaaaaaaa",
    "model_tag": "fraud-detector:aaaaaaaaaaaa",
    "model_hash": "sha256:00",
    "data_hash": "md5:00",
    "params_hash": "sha256:00",
    "image": "registry.example.com/mlgitops/fraud-detector:aaaaaaaaaaaa",
    "threshold": 0.5,
    "threshold_policy": "fixed",
    "metrics": {"roc_auc": 0.9},
    "trained_at": "2026-01-01T00:00:00+00:00",
    "mlgitops_version": "0.1.0",
}


def bento_tar(version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = f"name: fraud-detector\nversion: {version}\n".encode()
        info = tarfile.TarInfo("./bento.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git+DVC repo whose first commit has release aaaa… and its DVC-tracked bento archive."""
    root = tmp_path / "repo"
    root.mkdir()
    raw = raw_params()
    (root / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    (root / "release.json").write_text(json.dumps(RELEASE), encoding="utf-8")
    archive = root / raw["paths"]["bento_archive"]
    archive.parent.mkdir(parents=True)
    archive.write_bytes(bento_tar("aaaaaaaaaaaa"))
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "config", "user.email", "t@example.com"], root)
    run(["git", "config", "user.name", "t"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "add", "-q", str(archive.relative_to(root))], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "release aaaa"], root)
    return root


@pytest.mark.timeout(120)
def test_rev_reads_the_committed_release_and_archive(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The work tree moves on (another release, archive gone): --rev must not care or change it.
    archive = project / raw_params()["paths"]["bento_archive"]
    archive.unlink()
    (project / "release.json").write_text(json.dumps({**RELEASE, "bento_version": "b" * 12}))
    monkeypatch.chdir(project)
    cache = tmp_path / "cache"
    source = resolve_bento_source("HEAD", cache, root=project)
    assert source.bento_tag == "fraud-detector:aaaaaaaaaaaa"
    assert (source.image_repository, source.version) == (
        "registry.example.com/mlgitops/fraud-detector",
        "aaaaaaaaaaaa",
    )
    assert source.archive.is_relative_to(cache)
    assert source.archive.read_bytes() == bento_tar("aaaaaaaaaaaa")
    assert source.commit is not None
    assert len(source.commit) == 40
    assert not archive.exists()
    assert json.loads((project / "release.json").read_text())["bento_version"] == "b" * 12
    # A second resolution uses the cached copy.
    assert resolve_bento_source("HEAD", cache, root=project).archive == source.archive


@pytest.mark.timeout(60)
def test_unknown_rev_is_a_git_error(project: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="no-such-rev"):
        resolve_bento_source("no-such-rev", tmp_path / "cache", root=project)


@pytest.mark.timeout(60)
def test_work_tree_without_archive_says_run_the_pipeline(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (project / raw_params()["paths"]["bento_archive"]).unlink()
    monkeypatch.chdir(project)
    with pytest.raises(ArtifactError, match="dvc repro"):
        resolve_bento_source(None, tmp_path / "cache")
