"""Make the revert commit and its branch without touching the base branch or the work tree.

`git revert --no-edit` runs in a temporary detached worktree at the base commit, so its merge
machinery (renames, conflicts) is git's own, while the user's checkout, index and HEAD are
never involved. The branch ref is created only once the result is checked, with an
"expect no such ref" update, so two callers can never both create it; nothing is force-pushed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mlgitops.errors import GitError, RevertError
from mlgitops.git import read_blob, run
from mlgitops.revert.plan import RevertPlan, branch_exists

# A release repository may have DVC's or anyone's hooks installed; the temporary worktree is
# ours alone and must neither run them (post-checkout would `dvc checkout` into it) nor sign.
_QUIET = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false")


class BranchExistsError(RevertError):
    """The revert branch exists already (prepared before, or a name taken by someone else)."""


class RevertBranch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    branch: str
    revert_commit: str


def _one_line(error: GitError) -> str:
    """git's most telling line: its `error:`/`fatal:`/CONFLICT line, else the first one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("CONFLICT", "error:", "fatal:")):
            return line
    return lines[0] if lines else "git failed"


def _revert_in_worktree(repo: Path, plan: RevertPlan) -> str:
    """The sha of `git revert --no-edit <commit>` on top of the base commit (no ref moved)."""
    scratch = Path(tempfile.mkdtemp(prefix="mlgitops-revert-"))
    tree = scratch / "tree"
    try:
        run(repo, *_QUIET, "worktree", "add", "--quiet", "--detach", str(tree), plan.base_commit)
        args = ["revert", "--no-edit"]
        if len(plan.commit.parents) > 1:
            args += ["-m", "1"]  # a merged release: undo what it brought to the base branch
        try:
            run(tree, *_QUIET, *args, plan.commit.sha)
        except GitError as error:
            conflicted = run(tree, "diff", "--name-only", "--diff-filter=U").split()
            where = f" (conflicts in {', '.join(conflicted)})" if conflicted else ""
            raise RevertError(
                f"{plan.commit.short} does not revert cleanly onto {plan.base} "
                f"{plan.base_commit[:12]}{where}: {_one_line(error)}"
            ) from None
        return run(tree, "rev-parse", "HEAD").strip()
    finally:
        # Never added, or already gone: prune below forgets it either way.
        with contextlib.suppress(GitError):
            run(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)
        run(repo, "worktree", "prune")


def check_restored(repo: Path, plan: RevertPlan, commit: str) -> None:
    """The reverted tree must pin exactly the previous release: its record and its k8s patch."""
    for path in (plan.release_path, plan.k8s_release_patch):
        got = read_blob(repo, commit, path)
        want = read_blob(repo, plan.restored_commit, path)
        if got != want:
            raise RevertError(
                f"after reverting {plan.commit.short}, {path} is not the one of "
                f"{plan.restored_commit[:12]} ({plan.restored.bento_tag}): a later commit of "
                f"{plan.base} changed it too; revert by hand"
            )


def make_revert_commit(repo: Path, plan: RevertPlan) -> RevertBranch:
    """The revert commit, checked to restore the previous release; no ref is created yet."""
    if branch_exists(repo, plan.branch):
        raise BranchExistsError(f"branch {plan.branch} already exists (prepared before?)")
    commit = _revert_in_worktree(repo, plan)
    check_restored(repo, plan, commit)
    return RevertBranch(branch=plan.branch, revert_commit=commit)


def check_remote(repo: Path, remote: str, branch: str) -> None:
    """`remote` exists, answers, and has no branch `branch` yet (checked before anything is
    created; the push itself, never forced, is the guard against one created meanwhile)."""
    try:
        run(repo, "remote", "get-url", "--end-of-options", remote)
    except GitError:
        raise RevertError(f"--push: no remote named {remote!r} in {repo}") from None
    try:
        ref = f"refs/heads/{branch}"
        there = run(repo, "ls-remote", "--heads", "--end-of-options", remote, ref)
    except GitError as error:
        raise RevertError(f"--push: remote {remote} does not answer: {_one_line(error)}") from None
    if there.strip():
        raise BranchExistsError(f"branch {branch} already exists on remote {remote}")


def create_branch(repo: Path, made: RevertBranch) -> None:
    try:
        # The empty old value: create the branch, never move an existing one.
        ref = f"refs/heads/{made.branch}"
        run(repo, "update-ref", "-m", "mlgitops revert", ref, made.revert_commit, "")
    except GitError:
        message = f"branch {made.branch} already exists (created meanwhile)"
        raise BranchExistsError(message) from None


def push_branch(repo: Path, made: RevertBranch, remote: str) -> None:
    """Push the branch, and only it, to `remote`: no --force and no "+" refspec, so a remote
    branch of that name that the revert does not fast-forward refuses it."""
    ref = f"refs/heads/{made.branch}"
    try:
        run(repo, "push", "--porcelain", "--end-of-options", remote, f"{ref}:{ref}")
    except GitError as error:
        raise RevertError(
            f"branch {made.branch} was created locally, but pushing it to {remote} failed: "
            f"{_one_line(error)}"
        ) from None
