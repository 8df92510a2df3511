"""`mlgitops report pr`: the Markdown report of a model change; the exit code is the verdict."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Reports on model changes between Git revisions.", no_args_is_help=True)


@app.command("pr")
def pr(
    base: str = typer.Option(..., "--base", help="The revision whose release is the champion."),
    head: str = typer.Option("HEAD", "--head", help="The revision whose release is judged."),
    repo: Path = typer.Option(Path(), "--repo", help="The Git repository (default: here)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write the Markdown to this file (e.g. a PR comment)."
    ),
) -> None:
    """Print the Markdown report (verdict, metrics with intervals, data, tuning) of HEAD's
    release against BASE's. Exits 0 on PASS, 15 on FAIL, 16 on INCONCLUSIVE."""
    from mlgitops.errors import GateFailedError, GateInconclusiveError
    from mlgitops.git import repo_root
    from mlgitops.io import atomic_write_text
    from mlgitops.report import pr_report

    text, report = pr_report(repo_root(repo), base, head)
    typer.echo(text, nl=False)
    if output is not None:
        atomic_write_text(output, text)
    if report.verdict == "FAIL":
        raise typer.Exit(GateFailedError.exit_code)
    if report.verdict == "INCONCLUSIVE":
        raise typer.Exit(GateInconclusiveError.exit_code)
