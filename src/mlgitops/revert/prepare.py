"""`mlgitops revert` as one call: plan, revert commit, PR body, branch, push (in that order).

Every input is read and every check made before the branch ref is created, and the PR body is
written before it too: a failure at any step leaves the repository as it was (a revert commit
without a ref is garbage Git collects).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mlgitops.errors import RevertError
from mlgitops.model_base import FrozenModel
from mlgitops.revert.branch import (
    RevertBranch,
    check_remote,
    create_branch,
    make_revert_commit,
    push_branch,
)
from mlgitops.revert.plan import RevertPlan, plan_revert
from mlgitops.revert.prbody import Evidence, MonitorSummary, read_monitor_summary, render_pr_body


class RevertOutcome(FrozenModel):
    plan: RevertPlan
    branch: RevertBranch
    pr_body: str
    pushed_to: str | None = None


def monitor_summary(explicit: Path | None, default: Path | None) -> MonitorSummary | str | None:
    """The summary given (errors are errors), else the default one if there (errors are shown
    in the PR: a broken report must not hold up a rollback), else None."""
    if explicit is not None:
        return read_monitor_summary(explicit)
    if default is None or not default.exists():
        return None
    try:
        return read_monitor_summary(default)
    except RevertError as error:
        return str(error)


def prepare_revert(
    repo: Path,
    base: str,
    branch_prefix: str,
    *,
    branch: str | None = None,
    evidence: Sequence[Evidence] = (),
    summary: MonitorSummary | str | None = None,
    summary_name: str = "reports/monitor/summary.json",
    push: str | None = None,
    write_body: Callable[[str], None] = lambda _: None,
    plan: RevertPlan | None = None,
    to: str | None = None,
) -> RevertOutcome:
    """Create the branch restoring `base`'s last good release, or the release of `to` (and
    push it to `push`); `plan`, when the caller has made it already, is
    `plan_revert(repo, base, branch_prefix, branch, to)`."""
    plan = plan or plan_revert(repo, base, branch_prefix, branch, to)
    if push is not None:
        check_remote(repo, push, plan.branch)
    made = make_revert_commit(repo, plan)
    body = render_pr_body(plan, made, evidence, summary, summary_name, remote=push or "origin")
    write_body(body)
    create_branch(repo, made)
    if push is not None:
        push_branch(repo, made, push)
    return RevertOutcome(plan=plan, branch=made, pr_body=body, pushed_to=push)
