"""Which release to restore, from which commit, and what restoring it takes back.

A rollback restores a release, not a patch: the revert commit gets the whole tree of the
"restored commit", the last commit of the base branch's first-parent history on which the
restored release was current, normally the first parent of the commit that introduced the
current release. A commit whose dvc.lock does not match its own code, params or pipeline
(`reproduce.lock_mismatches`: `dvc repro` there would re-run stages and may build another bento)
is passed over for the one before it. Every commit since the restored one is taken back, code
and docs included; the plan lists them.

Read from Git objects only (the base branch is never checked out). The release record's path
is the committed params.yaml's `paths.release` at the base, as deploy reads it.
"""

from __future__ import annotations

from pathlib import Path

from mlgitops.errors import GitError, RevertError
from mlgitops.git import require_repository, resolve_commit, run
from mlgitops.model_base import FrozenModel
from mlgitops.release import ReleaseRecord
from mlgitops.revert.reproduce import lock_mismatches
from mlgitops.revision import find_release_at, params_at, path_at, release_path

# dvc.lock lies beside dvc.yaml at the top of the repository; DVC has no setting for it.
DVC_LOCK = "dvc.lock"
# How much of the history taken back the plan lists (the total is always counted): a PR body
# and a commit message stay readable, and `git log` shows the rest.
MAX_LISTED = 100
MAX_MERGED = 10
# How far back past unreproducible commits the restored commit is looked for.
MAX_PASSED_OVER = 50

# One record per field, NUL-separated, records ended by a NUL line: any subject reads back whole.
_FORMAT = "%H%x00%s%x00%an <%ae>%x00%aI%x00%P%x00"


class CommitInfo(FrozenModel):
    sha: str
    subject: str
    author: str
    date: str  # ISO 8601, the author date
    parents: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.sha[:12]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


class TakenBack(FrozenModel):
    """A commit of the base's first-parent history since the restored commit; for a merge, the
    commits it brought in (newest first, at most MAX_MERGED listed, all counted)."""

    commit: CommitInfo
    merged: tuple[CommitInfo, ...] = ()
    merged_total: int = 0


class PassedOver(FrozenModel):
    """A commit on which the restored release was current, not restored: its dvc.lock does not
    match it, so `dvc repro` there would not reproduce the release."""

    commit: CommitInfo
    reason: str


class RevertPlan(FrozenModel):
    """What `mlgitops revert` will do; nothing is changed until `branch.create_branch`."""

    base: str  # as given: "main"
    base_commit: str
    release_path: str
    k8s_release_patch: str
    lock_path: str = DVC_LOCK
    # The commit of the base that introduced the current release; None when none did on the
    # first-parent history (`--to` a release of a merged branch, before the first release).
    introduced: CommitInfo | None
    restored_commit: CommitInfo  # the revert commit gets exactly its tree
    chosen: bool = False  # picked with --to, not the last good release
    # Later commits on which the restored release was current, passed over (newest first).
    passed_over: tuple[PassedOver, ...] = ()
    # Why the restored commit's dvc.lock does not match it, when no commit of the release did
    # (or `--to` named one that does not): `dvc repro` on the branch will re-run stages.
    lock_mismatches: tuple[str, ...] = ()
    removed: ReleaseRecord  # the current release
    restored: ReleaseRecord  # the release brought back
    taken_back: tuple[TakenBack, ...]  # newest first, at most MAX_LISTED
    taken_back_total: int  # first-parent commits since the restored commit
    branch: str


def _parse_log(out: str) -> list[CommitInfo]:
    fields = out.split("\x00")
    commits = []
    for start in range(0, len(fields) - 4, 5):
        full, subject, author, date, parents = fields[start : start + 5]
        commits.append(
            CommitInfo(
                sha=full.strip(),
                subject=subject,
                author=author,
                date=date,
                parents=tuple(parents.split()),
            )
        )
    return commits


def commit_info(repo: Path, sha: str) -> CommitInfo:
    [info] = _parse_log(run(repo, "show", "-s", f"--format={_FORMAT}", sha))
    return info


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


def _introduction(
    repo: Path, base_commit: str, path: str, current: ReleaseRecord
) -> tuple[CommitInfo, ReleaseRecord | None] | None:
    """The commit of the first-parent history that introduced `current` and the record at its
    first parent (None there: `current` is the first release); None when no commit did."""
    # Only commits that changed the record can change the release; first parent: the releases
    # as the base branch had them, a merged release being its merge commit.
    log = run(repo, "log", "--first-parent", "--format=%H", base_commit, "--", path)
    for sha in log.split():
        if _tag(find_release_at(repo, sha, path)) != current.bento_tag:
            return None  # an older release: the one introducing `current` was passed
        info = commit_info(repo, sha)
        previous = find_release_at(repo, info.parents[0], path) if info.parents else None
        if _tag(previous) == current.bento_tag:
            continue  # the record changed, the release did not (a same-model rebuild)
        return info, previous
    return None


def taken_back(repo: Path, restored: str, base_commit: str) -> tuple[tuple[TakenBack, ...], int]:
    """The first-parent commits of the base since `restored` (newest first, at most MAX_LISTED,
    merges with the commits they brought in) and how many there are in all."""
    commits = _parse_log(
        run(repo, "log", "--first-parent", f"--format={_FORMAT}", f"{restored}..{base_commit}")
    )
    listed = []
    for info in commits[:MAX_LISTED]:
        if not info.is_merge:
            listed.append(TakenBack(commit=info))
            continue
        # What the merge brought to the base: reachable from it, not from its first parent.
        span = (f"^{info.parents[0]}", *info.parents[1:])
        total = int(run(repo, "rev-list", "--count", *span).strip())
        merged = _parse_log(run(repo, "log", f"-n{MAX_MERGED}", f"--format={_FORMAT}", *span))
        listed.append(TakenBack(commit=info, merged=tuple(merged), merged_total=total))
    return tuple(listed), len(commits)


def _reproducing(
    repo: Path, newest: str, path: str, release: ReleaseRecord
) -> tuple[str, list[PassedOver], list[str]]:
    """The newest commit of `newest`'s first-parent history, on which `release` is current, that
    reproduces it; the commits passed over; and, when none does, `newest` with its reasons."""
    log = run(repo, "rev-list", "--first-parent", f"-n{MAX_PASSED_OVER + 1}", newest).split()
    passed: list[PassedOver] = []
    first: list[str] | None = None
    for sha in log:
        if _tag(find_release_at(repo, sha, path)) != release.bento_tag:
            break  # past the commit that introduced the release
        reasons = lock_mismatches(repo, sha)
        if not reasons:
            return sha, passed, []
        first = first if first is not None else reasons
        passed.append(PassedOver(commit=commit_info(repo, sha), reason=reasons[0]))
    return newest, [], first or []


def _resolve(repo: Path, rev: str, what: str) -> str:
    try:
        return resolve_commit(repo, rev)
    except GitError:
        raise RevertError(f"{what} {rev!r} is not a commit of the repository at {repo}") from None


def _chosen(
    repo: Path, to: str, base: str, base_commit: str, path: str, current: ReleaseRecord
) -> tuple[str, ReleaseRecord]:
    """`--to REV`: REV's commit and release, refused unless REV is in the base's history and
    pins another release than the current one."""
    sha = _resolve(repo, to, "--to")
    where = f"--to {to} ({sha[:12]})"
    record = find_release_at(repo, sha, path)
    if record is None:
        raise RevertError(f"{where} has no release record {path}: nothing to restore")
    if record.bento_tag == current.bento_tag:
        raise RevertError(
            f"{where} pins {record.bento_tag}, the release {base} pins now: nothing to restore"
        )
    try:
        run(repo, "merge-base", "--is-ancestor", sha, base_commit)
    except GitError:
        raise RevertError(
            f"{where} is not in the history of {base}: restore a release {base} had "
            "(merge another branch's release with a pull request)"
        ) from None
    return sha, record


def current_release(repo: Path, base: str) -> tuple[str, str, ReleaseRecord]:
    """`base`'s commit, the path of its release record and the record (RevertError: none)."""
    require_repository(repo)
    base_commit = _resolve(repo, base, "base branch")
    path = release_path(params_at(repo, base_commit), base_commit)
    current = find_release_at(repo, base_commit, path)
    if current is None:
        raise RevertError(
            f"{base} ({base_commit[:12]}) has no release record {path}: nothing to revert"
        )
    return base_commit, path, current


def plan_revert(
    repo: Path,
    base: str = "main",
    branch_prefix: str = "revert/",
    branch: str | None = None,
    to: str | None = None,
) -> RevertPlan:
    """The release to restore on `base`, the commit whose tree restores it, and what that takes
    back. Without `to`: the last good release, the newest of `base`'s first-parent history
    before the current one with another bento tag (a commit that only rewrites the record, or
    rebuilds the same bento, is not a release). RevertError when there is none, or `to` is no
    release of `base`'s history other than the current one.
    """
    base_commit, path, current = current_release(repo, base)
    patch = path_at(params_at(repo, base_commit), base_commit, "k8s_release_patch")
    found = _introduction(repo, base_commit, path, current)
    introduced = found[0] if found is not None else None
    passed: list[PassedOver] = []
    if to is not None:
        restored_sha, restored = _chosen(repo, to, base, base_commit, path, current)
        mismatches = lock_mismatches(repo, restored_sha) or []
    elif found is None:
        raise RevertError(
            f"no commit of {base} introduces release {current.bento_tag} ({path}): "
            "there is no earlier release to restore"
        )
    elif found[1] is None:
        raise RevertError(
            f"{found[0].short} introduced the first release {current.bento_tag} on {base}: "
            "there is no earlier release to restore"
        )
    else:
        restored = found[1]
        restored_sha, passed, mismatches = _reproducing(repo, found[0].parents[0], path, restored)
    name = branch or f"{branch_prefix}{current.bento_version}"
    check_branch_name(repo, name)
    listed, total = taken_back(repo, restored_sha, base_commit)
    return RevertPlan(
        base=base,
        base_commit=base_commit,
        release_path=path,
        k8s_release_patch=patch,
        introduced=introduced,
        restored_commit=commit_info(repo, restored_sha),
        chosen=to is not None,
        passed_over=tuple(passed),
        lock_mismatches=tuple(mismatches),
        removed=current,
        restored=restored,
        taken_back=listed,
        taken_back_total=total,
        branch=name,
    )
