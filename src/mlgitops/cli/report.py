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


@app.command(
    "pr",
    epilog=epilog(
        e.ArtifactError,
        e.GitError,
        e.GateError,
        e.GateFailedError,
        e.GateInconclusiveError,
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
) -> None:
    """Print the Markdown report (verdict, metrics with intervals, data, tuning) of HEAD's
    release against BASE's. Exits 0 on PASS, 17 on FAIL, 18 on INCONCLUSIVE. A HEAD that
    commits a model its gate did not pass exits by that committed verdict (17, 18); one whose
    committed PASS is about another model than its release exits 28."""
    from mlgitops.errors import GateFailedError, GateInconclusiveError
    from mlgitops.git import repo_root
    from mlgitops.io import atomic_write_text
    from mlgitops.reports.pr import pr_report

    text, report = pr_report(repo_root(repo), base, head)
    typer.echo(text, nl=False)
    if output is not None:
        atomic_write_text(output, text)
    if report.verdict == "FAIL":
        raise typer.Exit(GateFailedError.exit_code)
    if report.verdict == "INCONCLUSIVE":
        raise typer.Exit(GateInconclusiveError.exit_code)
