"""`mlgitops report`: the headline of a release's stakeholder report and where its page is;
`mlgitops report pr`: the Markdown report of a model change, its exit code the verdict.

A group, so further report commands (`mlgitops report pr`) sit beside `show`; plain
`mlgitops report` is `mlgitops report show`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops import errors as e
from mlgitops.cli import helptext
from mlgitops.cli.exitcodes import epilog
from mlgitops.cli.options import ParamsOption

app = helptext.app(help="The stakeholder report of a release (written by `dvc repro`).")

RevOption = typer.Option(
    None, "--rev", help="A Git revision whose committed report to show (default: the work tree)."
)


def _show(rev: str | None, params: Path) -> None:
    from mlgitops import git
    from mlgitops.reports.lookup import report_at, working_tree_report

    found = working_tree_report(params) if rev is None else report_at(git.repo_root(), rev)
    if found.working_tree:
        where = "this working tree" + (f" (HEAD {found.commit[:12]})" if found.commit else "")
    else:
        where = f"commit {found.commit}"
    typer.echo(found.report.headline.sentence)
    typer.echo(f"release: {found.report.lineage.bento_tag} at {where}")
    typer.echo(f"report: {found.html}")


@app.callback(invoke_without_command=True, epilog=epilog(e.ArtifactError, e.GitError))
def report(ctx: typer.Context, rev: str | None = RevOption, params: Path = ParamsOption) -> None:
    """Print the headline sentence and the path of the report page (same as `show`)."""
    if ctx.invoked_subcommand is None:
        _show(rev, params)


@app.command(epilog=epilog(e.ArtifactError, e.GitError))
def show(rev: str | None = RevOption, params: Path = ParamsOption) -> None:
    """Print the headline sentence and the path of the report page of the release."""
    _show(rev, params)


def exit_code(verdict: str, policy_changed: bool) -> int:
    """`report pr`'s exit: FAIL and INCONCLUSIVE by the verdict whatever the policy; a PASS of a
    change that edits the gate policy PolicyChangedError's code (a policy owner reviews it)."""
    if verdict == "FAIL":
        return e.GateFailedError.exit_code
    if verdict == "INCONCLUSIVE":
        return e.GateInconclusiveError.exit_code
    return e.PolicyChangedError.exit_code if policy_changed else 0


@app.command(
    "pr",
    epilog=epilog(
        e.ArtifactError,
        e.GitError,
        e.GateError,
        e.GateFailedError,
        e.GateInconclusiveError,
        e.PolicyChangedError,
        e.JudgeError,
        e.ReleaseNotPassedError,
        ok="PASS",
    ),
)
def pr(
    base: str = typer.Option(..., "--base", help="The revision whose release is the champion."),
    head: str = typer.Option("HEAD", "--head", help="The revision whose release is judged."),
    repo: Path = typer.Option(Path(), "--repo", help="The Git repository (default: here)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write the Markdown to this file (e.g. a PR comment)."
    ),
    verdict_json: Path | None = typer.Option(
        None,
        "--verdict-json",
        help="Also write the verdict record (verdict, exit code, policy hash, policy_changed "
        "and the changed keys) as JSON to this file.",
    ),
    judge_from_base: bool = typer.Option(
        False,
        "--judge-from-base",
        help="Compute the verdict with BASE's code: a worktree of BASE with a venv made from "
        "its requirements.lock (the running one when it has every pin), reading HEAD's model "
        "and test rows as data by hash.",
    ),
) -> None:
    """Print the Markdown report (verdict, metrics with intervals, data, tuning) of HEAD's
    release against BASE's, judged under BASE's gate policy. Exits 0 on PASS, 17 on FAIL, 18
    on INCONCLUSIVE, 33 on a PASS of a HEAD that changes the gate policy (FAIL and
    INCONCLUSIVE come first). A HEAD that commits a model its gate did not pass exits by that
    committed verdict (17, 18); one whose committed PASS is about another model than its
    release exits 28."""
    from mlgitops.git import repo_root
    from mlgitops.io import atomic_write_text
    from mlgitops.records import save_record

    root = repo_root(repo)
    if judge_from_base:
        from mlgitops.reports.judge import judge_from_base as run_judge

        text, verdict = run_judge(root, base, head, echo=lambda line: typer.echo(line, err=True))
    else:
        from mlgitops.reports.pr import pr_report

        text, verdict = pr_report(root, base, head)
    verdict = verdict.model_copy(
        update={"exit_code": exit_code(verdict.verdict, verdict.policy_changed)}
    )
    typer.echo(text, nl=False)
    if output is not None:
        atomic_write_text(output, text)
    if verdict_json is not None:
        save_record(verdict, verdict_json)
    if verdict.exit_code:
        raise typer.Exit(verdict.exit_code)
