"""The previous release: the release before this one was first recorded in HEAD's history.

"Before it was first recorded" matters twice. Once this release is committed, the newest commit
touching release.json is its own; skipping commits that record the same bento keeps the answer
(and so the report's bytes) the same before and after that commit. And a rollback
(`mlgitops revert`) commits an older release's tree again after the release it removes: the
report of the restored release still compares with what came before it, so the rollback
commit reproduces the restored commit's report byte for byte.

Git history is not a DVC dependency: a report re-run after a new release elsewhere in history
compares with that one. Reports are re-run with the release they describe, so this holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops import git
from mlgitops.errors import ArtifactError, ConfigError, GitError
from mlgitops.release import ReleaseRecord
from mlgitops.revision import (
    DEFAULT_PATHS,
    find_release_at,
    params_at,
    path_at,
    release_path,
)

# How far back to look; releases are a handful of commits apart, not thousands.
MAX_COMMITS = 500


@dataclass(frozen=True)
class PreviousRelease:
    commit: str
    record: ReleaseRecord
    # The commit's evaluate.json as a plain mapping (older ones predate today's fields), if any.
    metrics: dict[str, Any] | None


def previous_release(repo: Path | None, current: ReleaseRecord) -> PreviousRelease | None:
    """The release before `current` in HEAD's history, None without one (or without Git)."""
    try:
        root = git.repo_root(repo)
        head = git.current_commit(root)
        if head is None:
            return None
        params = params_at(root, head)
        path = release_path(params, head)
        log = git.run(root, "log", f"-{MAX_COMMITS}", "--format=%H", head, "--", path).split()
        # The commits whose diff adds or removes this bento_version line: its first recording
        # is among them. (The record is one key per line; a version is hex, a safe regex.)
        line = f'"bento_version": *"{current.bento_version}"'
        pickaxe = ("log", "--format=%H", f"-G{line}", head, "--", path)
        recorded = set(git.run(root, *pickaxe).split())
    except GitError:
        return None
    seen = [i for i, commit in enumerate(log) if commit in recorded]
    for commit in log[seen[-1] + 1 :] if seen else log:
        try:
            record = find_release_at(root, commit, path)
        except ArtifactError:
            continue  # a malformed record is no release to compare with
        if record is None or record.bento_tag == current.bento_tag:
            continue
        return PreviousRelease(commit=commit, record=record, metrics=_metrics_at(root, commit))
    return None


def _metrics_at(root: Path, commit: str) -> dict[str, Any] | None:
    try:
        params = params_at(root, commit)
        path = path_at(params, commit, "metrics")
    except ConfigError:  # an old commit's params need not parse today; then no counts
        path = DEFAULT_PATHS["metrics"]
    text = git.read_blob(root, commit, path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
