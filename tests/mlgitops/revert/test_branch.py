"""The branch is created, never moved, and pushed without force; checked before any change."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitops.cli.main import main
from mlgitops.revert.branch import BranchExistsError, create_branch, make_revert_commit
from mlgitops.revert.plan import plan_revert
from tests.mlgitops.revert.helpers import B, ReleaseRepo

BRANCH = f"revert/{B.bento_version}"


def test_a_branch_created_meanwhile_is_never_moved(repo: ReleaseRepo) -> None:
    plan = plan_revert(repo.path, "main")
    made = make_revert_commit(repo.path, plan)
    repo.git("branch", BRANCH, "main~2")  # another process got there first
    with pytest.raises(BranchExistsError, match="created meanwhile"):
        create_branch(repo.path, made)
    assert repo.git("rev-parse", BRANCH) == repo.git("rev-parse", "main~2")


def _remote(repo: ReleaseRepo, tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    repo.git("init", "-q", "--bare", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "origin", "main")
    return remote


def test_a_branch_of_that_name_on_the_remote_refuses_before_any_change(
    repo: ReleaseRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _remote(repo, tmp_path)
    repo.git("push", "-q", "origin", f"main~2:refs/heads/{BRANCH}")
    remote_before = repo.git("ls-remote", "origin")
    before = repo.state()

    code = main(["revert", "--repo", str(repo.path), "--push", "origin"])

    err = capsys.readouterr().err
    assert code == 25
    assert err == f"error: branch {BRANCH} already exists on remote origin\n"
    assert repo.state() == before
    assert repo.git("ls-remote", "origin") == remote_before


def test_an_unreachable_remote_refuses_before_any_change(
    repo: ReleaseRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.git("remote", "add", "origin", str(tmp_path / "gone.git"))
    before = repo.state()

    code = main(["revert", "--repo", str(repo.path), "--push", "origin"])

    err = capsys.readouterr().err
    assert code == 25
    assert err.startswith("error: --push: remote origin does not answer: ")
    assert err.count("\n") == 1
    assert repo.state() == before
