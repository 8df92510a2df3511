"""Which commit to revert: the latest commit on the base branch that changed the release.

Read from Git objects only (the base branch is never checked out). The release record's path
is the committed params.yaml's `paths.release` at the base, as deploy reads it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mlgitops.errors import GitError, RevertError
from mlgitops.git import require_repository, resolve_commit, run
from mlgitops.release import ReleaseRecord
from mlgitops.revision import find_release_at, params_at, path_at, release_path


class CommitInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha: str
    subject: str
    author: str
    date: str  # ISO 8601, the author date
    parents: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.sha[:12]


class RevertPlan(BaseModel):
    """What `mlgitops revert` will do; nothing is changed until `branch.create_revert_branch`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str  # as given: "main"
    base_commit: str
    release_path: str
    k8s_release_patch: str
    commit: CommitInfo  # the release commit to revert
    restored_commit: str  # its first parent: where the previous release was committed
    removed: ReleaseRecord  # the current release (introduced by `commit`)
    restored: ReleaseRecord  # the one before it
    branch: str


def commit_info(repo: Path, sha: str) -> CommitInfo:
    # One record per field, NUL-separated, so a subject with any character reads back whole.
    out = run(repo, "show", "-s", "--format=%H%x00%s%x00%an <%ae>%x00%aI%x00%P", sha)
    full, subject, author, date, parents = out.rstrip("\n").split("\x00")
    return CommitInfo(
        sha=full, subject=subject, author=author, date=date, parents=tuple(parents.split())
    )


def branch_exists(repo: Path, branch: str) -> bool:
    try:
        run(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}")
    except GitError:
        return False
    return True


def check_branch_name(repo: Path, branch: str) -> None:
    try:
        run(repo, "check-ref-format", "--branch", branch)
    except GitError:
        raise RevertError(f"branch name {branch!r} is not a valid Git branch name") from None


def _tag(record: ReleaseRecord | None) -> str | None:
    return record.bento_tag if record is not None else None


def plan_revert(
    repo: Path, base: str = "main", branch_prefix: str = "revert/", branch: str | None = None
) -> RevertPlan:
    """The release commit on `base` to revert and the release that reverting it restores.

    The release commit is the latest commit of `base`'s first-parent history whose release
    record has another bento tag than its first parent's (a commit that only reformats the
    record is not a release). RevertError when `base` has no release or no earlier one.
    """
    require_repository(repo)
    try:
        base_commit = resolve_commit(repo, base)
    except GitError:
        message = f"base branch {base!r} is not a commit of the repository at {repo}"
        raise RevertError(message) from None
    params = params_at(repo, base_commit)
    path = release_path(params, base_commit)
    patch = path_at(params, base_commit, "k8s_release_patch")
    current = find_release_at(repo, base_commit, path)
    if current is None:
        raise RevertError(
            f"{base} ({base_commit[:12]}) has no release record {path}: nothing to revert"
        )
    # First parent: the releases as the base branch had them, one merge per release.
    log = run(repo, "log", "--first-parent", "--format=%H", base_commit, "--", path)
    for sha in log.split():
        info = commit_info(repo, sha)
        if _tag(find_release_at(repo, sha, path)) != current.bento_tag:
            break  # an older release: the commit introducing the current one was passed
        previous = find_release_at(repo, info.parents[0], path) if info.parents else None
        if _tag(previous) == current.bento_tag:
            continue  # the record changed, the release did not
        if previous is None:
            raise RevertError(
                f"{info.short} introduced the first release {current.bento_tag} on {base}: "
                "there is no earlier release to restore"
            )
        name = branch or f"{branch_prefix}{current.bento_version}"
        check_branch_name(repo, name)
        return RevertPlan(
            base=base,
            base_commit=base_commit,
            release_path=path,
            k8s_release_patch=patch,
            commit=info,
            restored_commit=info.parents[0],
            removed=current,
            restored=previous,
            branch=name,
        )
    raise RevertError(
        f"no commit of {base} introduces release {current.bento_tag} ({path}): "
        "there is no earlier release to restore"
    )
