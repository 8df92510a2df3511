"""Make the revert commit and its branch without touching the base branch or the work tree.

The revert commit is made with plumbing: `git commit-tree <restored>^{tree} -p <base head>`,
one commit on top of the base whose tree is exactly the restored commit's. No worktree, no
merge, so it can never conflict, and the user's checkout, index and HEAD are never involved.
The branch ref is created only once the result is checked, with an "expect no such ref"
update, so two callers can never both create it; nothing is force-pushed.
"""

from __future__ import annotations

from pathlib import Path

from mlgitops.errors import GitError, RevertError
from mlgitops.git import run
from mlgitops.model_base import FrozenModel
from mlgitops.revert.plan import RevertPlan, branch_exists

# A release repository may have DVC's or anyone's hooks installed, or signing on: the commit
# is made by a receiver with no terminal, so it neither runs hooks nor asks for a passphrase.
_QUIET = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false")
# How many commits taken back the commit message names (the PR body lists more).
MESSAGE_LISTED = 30


class BranchExistsError(RevertError):
    """The revert branch exists already (prepared before, or a name taken by someone else)."""


class RevertBranch(FrozenModel):
    branch: str
    revert_commit: str


def _one_line(error: GitError) -> str:
    """git's most telling line: its `error:`/`fatal:` line, else the first one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("error:", "fatal:")):
            return line
    return lines[0] if lines else "git failed"


def commit_message(plan: RevertPlan) -> str:
    restored = plan.restored_commit
    lines = [
        f"Restore release {plan.restored.bento_tag} (the tree of {restored.short})",
        "",
        f"Rolls {plan.base} back from {plan.removed.bento_tag} to {plan.restored.bento_tag}:",
        f"this commit's tree is exactly the tree of {restored.sha}",
        f'("{restored.subject}"), where {plan.restored.bento_tag} was current. It takes back',
        f"every commit of {plan.base} since ({plan.taken_back_total}), code and docs included:",
        "",
    ]
    for item in plan.taken_back[:MESSAGE_LISTED]:
        merge = f" (merge, {item.merged_total} commits)" if item.commit.is_merge else ""
        lines.append(f"  {item.commit.short} {item.commit.subject}{merge}")
    if plan.taken_back_total > MESSAGE_LISTED:
        more = plan.taken_back_total - MESSAGE_LISTED
        span = f"{restored.short}..{plan.base_commit[:12]}"
        lines.append(f"  ... and {more} more: git log --first-parent {span}")
    return "\n".join(lines)


def _tree(repo: Path, rev: str) -> str:
    return run(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{tree}}").strip()


def _blob_id(repo: Path, commit: str, path: str) -> str | None:
    """The object id of `path` at `commit`; None when the commit has no such file."""
    try:
        return run(repo, "rev-parse", "--verify", "--quiet", f"{commit}:{path}").strip() or None
    except GitError:
        return None


def check_restored(repo: Path, plan: RevertPlan, commit: str) -> None:
    """The result must be the restored release exactly: the restored commit's tree, and so its
    release record, k8s pin and dvc.lock (checked by name, as a reviewer would ask)."""
    restored = plan.restored_commit.sha
    for path in (plan.release_path, plan.k8s_release_patch, plan.lock_path):
        if _blob_id(repo, commit, path) != _blob_id(repo, restored, path):
            raise RevertError(
                f"the revert commit's {path} is not the one of {restored[:12]} "
                f"({plan.restored.bento_tag}); nothing was created"
            )
    if _tree(repo, commit) != _tree(repo, restored):
        raise RevertError(
            f"the revert commit's tree is not the one of {restored[:12]}; nothing was created"
        )


def make_revert_commit(repo: Path, plan: RevertPlan) -> RevertBranch:
    """The revert commit, checked to restore the release; no ref is created yet (a commit
    without a ref is garbage Git collects)."""
    if branch_exists(repo, plan.branch):
        raise BranchExistsError(f"branch {plan.branch} already exists (prepared before?)")
    tree = _tree(repo, plan.restored_commit.sha)
    try:
        commit = run(
            repo, *_QUIET, "commit-tree", tree, "-p", plan.base_commit, "-m", commit_message(plan)
        ).strip()
    except GitError as error:
        raise RevertError(f"cannot make the revert commit: {_one_line(error)}") from None
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
