"""`mlgitops report`: the headline of a release's stakeholder report and where its page is.

A group, so further report commands (`mlgitops report pr`) sit beside `show`; plain
`mlgitops report` is `mlgitops report show`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops.cli.options import ParamsOption

app = typer.Typer(help="The stakeholder report of a release (written by `dvc repro`).")

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


@app.callback(invoke_without_command=True)
def report(ctx: typer.Context, rev: str | None = RevOption, params: Path = ParamsOption) -> None:
    """Print the headline sentence and the path of the report page (same as `show`)."""
    if ctx.invoked_subcommand is None:
        _show(rev, params)


@app.command()
def show(rev: str | None = RevOption, params: Path = ParamsOption) -> None:
    """Print the headline sentence and the path of the report page of the release."""
    _show(rev, params)
