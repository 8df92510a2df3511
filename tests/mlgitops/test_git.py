"""The Git facade: revisions resolve to commits, objects are read from Git, never the work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlgitops import git
from mlgitops.errors import GitError

pytestmark = pytest.mark.timeout(60)


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "k8s" / "base").mkdir(parents=True)
    (root / "k8s" / "base" / "a.yaml").write_text("a: 1\n")
    (root / "notes.txt").write_text("first\n")
    _git(tmp_path, "init", "-q", "-b", "main", str(root))
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    _git(root, "config", "commit.gpgsign", "false")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "first")
    return root


def test_a_revision_resolves_to_its_full_commit(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    assert git.resolve_commit(repo, "HEAD") == head
    assert git.resolve_commit(repo, head[:7]) == head
    assert git.resolve_commit(repo, "main") == head


@pytest.mark.parametrize("rev", ["no-such-branch", "--all", "", "HEAD:notes.txt"])
def test_what_names_no_commit_is_a_git_error_naming_it(repo: Path, rev: str) -> None:
    with pytest.raises(GitError) as error:
        git.resolve_commit(repo, rev)
    assert repr(rev) in str(error.value)


def test_blobs_come_from_the_commit_not_the_work_tree(repo: Path) -> None:
    head = git.resolve_commit(repo, "HEAD")
    (repo / "notes.txt").write_text("edited, not committed\n")
    assert git.read_blob(repo, head, "notes.txt") == "first\n"
    assert git.read_blob(repo, head, "no-such-file") is None


def test_extract_tree_unpacks_one_directory_of_a_commit(repo: Path, tmp_path: Path) -> None:
    head = git.resolve_commit(repo, "HEAD")
    (repo / "k8s" / "base" / "a.yaml").write_text("a: edited\n")
    dest = tmp_path / "out"
    dest.mkdir()
    git.extract_tree(repo, head, "k8s", dest)
    assert (dest / "k8s" / "base" / "a.yaml").read_text() == "a: 1\n"
    assert not (dest / "notes.txt").exists()


def test_root_and_current_commit(repo: Path, tmp_path: Path) -> None:
    assert git.repo_root(repo / "k8s" / "base") == repo.resolve()
    assert git.current_commit(repo) == _git(repo, "rev-parse", "HEAD")
    outside = tmp_path / "outside"
    outside.mkdir()
    assert git.current_commit(outside) is None


def test_a_directory_that_is_no_repository_says_so(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for call in (lambda: git.resolve_commit(plain, "HEAD"), lambda: git.repo_root(plain)):
        with pytest.raises(GitError) as error:
            call()
        assert str(error.value) == f"{plain}: not a Git repository"
    with pytest.raises(GitError, match="no such directory"):
        git.resolve_commit(tmp_path / "missing", "HEAD")
