"""Which release `mlgitops revert` restores, from which commit's tree, and what that takes back
(Git objects only)."""

from __future__ import annotations

import pytest

from mlgitops.errors import RevertError
from mlgitops.revert.plan import MAX_LISTED, MAX_MERGED, plan_revert
from tests.mlgitops.deploy.helpers import release_for
from tests.mlgitops.revert.helpers import A, B, ReleaseRepo


def test_the_latest_release_commit_and_the_release_before_it(repo: ReleaseRepo) -> None:
    release_b = repo.git("rev-parse", "main")
    repo.commit_file("NOTES.md", "not a release\n", "docs after the release")

    plan = plan_revert(repo.path, "main")

    assert plan.introduced is not None
    assert plan.introduced.sha == release_b
    assert plan.introduced.subject == "release B"
    assert plan.restored_commit.sha == repo.git("rev-parse", "main~2")
    assert plan.restored_commit.subject == "release A"
    assert (plan.removed, plan.restored) == (B, A)
    assert plan.branch == f"revert/{B.bento_version}"
    assert plan.base_commit == repo.git("rev-parse", "main")
    assert not plan.chosen
    # Everything since A, newest first: the docs commit, then release B.
    assert plan.taken_back_total == 2
    assert [item.commit.subject for item in plan.taken_back] == [
        "docs after the release",
        "release B",
    ]


def test_a_record_rewritten_without_a_new_release_is_not_the_release_commit(
    repo: ReleaseRepo,
) -> None:
    release_b = repo.git("rev-parse", "main")
    repo.commit_release(B.model_copy(update={"mlgitops_version": "0.1.1"}), "record only")

    plan = plan_revert(repo.path, "main")

    assert plan.introduced is not None
    assert plan.introduced.sha == release_b
    assert plan.restored == A
    assert plan.taken_back_total == 2


def test_a_release_merged_from_a_branch_is_reverted_as_the_merge(repo: ReleaseRepo) -> None:
    repo.git("switch", "-q", "-c", "retrain")
    repo.commit_release(release_for("C"), "release C")
    repo.git("switch", "-q", "main")
    repo.commit_file("NOTES.md", "meanwhile on main\n", "docs")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge retrain: release C", "retrain")

    plan = plan_revert(repo.path, "main")

    assert plan.introduced is not None
    assert plan.introduced.subject == "Merge retrain: release C"
    assert plan.introduced.is_merge
    assert plan.restored == B
    # The base as it was before the merge, the docs commit made meanwhile included.
    assert plan.restored_commit.sha == repo.git("rev-parse", "main^1")
    [merge] = plan.taken_back
    assert merge.commit.subject == "Merge retrain: release C"
    assert [c.subject for c in merge.merged] == ["release C"]
    assert merge.merged_total == 1


def test_long_histories_are_counted_whole_and_listed_in_part(repo: ReleaseRepo) -> None:
    repo.git("switch", "-q", "-c", "big")
    for i in range(MAX_MERGED + 2):
        repo.git("commit", "-q", "--allow-empty", "-m", f"on big {i}")
    repo.git("switch", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge big", "big")
    for i in range(MAX_LISTED + 4):
        repo.git("commit", "-q", "--allow-empty", "-m", f"on main {i}")

    plan = plan_revert(repo.path, "main")

    # B, the merge and the commits after it, on the first-parent history.
    assert plan.taken_back_total == MAX_LISTED + 6
    assert len(plan.taken_back) == MAX_LISTED
    assert plan.taken_back[0].commit.subject == f"on main {MAX_LISTED + 3}"
    plan_all = plan_revert(repo.path, f"main~{MAX_LISTED + 4}")
    [merge, release_b] = plan_all.taken_back
    assert merge.merged_total == MAX_MERGED + 2
    assert len(merge.merged) == MAX_MERGED
    assert release_b.commit.subject == "release B"


def test_custom_prefix_and_branch(repo: ReleaseRepo) -> None:
    assert plan_revert(repo.path, "main", "rollback-").branch == f"rollback-{B.bento_version}"
    assert plan_revert(repo.path, "main", branch="undo-b").branch == "undo-b"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("first", "introduced the first release"),
        ("none", "has no release record release.json"),
        ("base", "base branch 'nope' is not a commit"),
        ("branch", "'bad..name' is not a valid Git branch name"),
    ],
)
def test_refusals_are_one_line(repo: ReleaseRepo, setup: str, message: str) -> None:
    base, branch = "main", None
    if setup == "first":
        base = "main~1"  # only release A
    elif setup == "none":
        base = "main~2"  # the project before any release
    elif setup == "base":
        base = "nope"
    else:
        branch = "bad..name"
    with pytest.raises(RevertError) as caught:
        plan_revert(repo.path, base, branch=branch)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
