"""`mlgitops revert [serve]`: a branch restoring the last good release, from the shell or from
an Alertmanager webhook (mlgitops.revert)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlgitops import errors as e
from mlgitops.cli import helptext
from mlgitops.cli.exitcodes import epilog

if TYPE_CHECKING:  # imported lazily at run time, so `mlgitops --help` stays fast
    from mlgitops.config import Params

app = helptext.app(
    help="Prepare a branch restoring the last good release (auto-sync stays on).",
    no_args_is_help=False,
)

RepoOption = typer.Option(Path(), "--repo", help="The Git repository (default: here).")
BaseOption = typer.Option(
    None, "--base", help="The branch holding the release (default: params revert.base, main)."
)
ParamsOption = typer.Option(
    None, "--params", help="The params file (default: params.yaml of --repo)."
)


def _params(repo: Path, params: Path | None) -> Params:
    from mlgitops.config import load_params

    return load_params(params if params is not None else repo / "params.yaml")


def _in_repo(repo: Path, path: Path) -> Path:
    return path if path.is_absolute() else repo / path


@app.callback(
    invoke_without_command=True, epilog=epilog(e.ArtifactError, e.GitError, e.RevertError)
)
def revert(
    ctx: typer.Context,
    repo: Path = RepoOption,
    base: str | None = BaseOption,
    branch: str | None = typer.Option(
        None, "--branch", help="Branch to create (default: revert/<bento version removed>)."
    ),
    to: str | None = typer.Option(
        None,
        "--to",
        help="Restore the release of this revision of --base's history instead of the last "
        "good one (the newest before the current with another bento tag).",
    ),
    evidence: list[Path] = typer.Option(
        [], "--evidence", help="A file for the PR body (an Alertmanager payload, a log); repeat."
    ),
    monitor_summary: Path | None = typer.Option(
        None, "--monitor-summary", help="Monitor summary (default: paths.monitor_summary, if any)."
    ),
    pr_body: Path | None = typer.Option(
        None, "--pr-body", help="Write the PR body (Markdown) here (default: standard output)."
    ),
    push: str | None = typer.Option(
        None, "--push", help="Push the new branch (only it, never forced) to this remote."
    ),
    params: Path | None = ParamsOption,
) -> None:
    """Create a branch restoring the last good release of --base (or --to REV's).

    The branch is one commit on top of --base whose tree is exactly the tree of the last
    commit on which that release was current: every commit since is taken back, code and docs
    included, and the PR body lists them. --base and the work tree are left untouched; the PR
    body also names the alert, the monitor summary, both releases and the commands to merge
    and deploy.
    """
    if ctx.invoked_subcommand is not None:
        return
    from mlgitops.io import atomic_write_text
    from mlgitops.revert.prbody import read_evidence
    from mlgitops.revert.prepare import monitor_summary as read_summary
    from mlgitops.revert.prepare import prepare_revert

    loaded = _params(repo, params)
    config = loaded.revert
    # Every input is read before anything is changed.
    items = [read_evidence(path) for path in evidence]
    default_summary = _in_repo(repo, loaded.paths.monitor_summary)
    summary = read_summary(monitor_summary, default_summary)
    name = str(monitor_summary or loaded.paths.monitor_summary)

    def write(body: str) -> None:
        if pr_body is not None:
            atomic_write_text(pr_body, body)

    outcome = prepare_revert(
        repo,
        base or config.base,
        config.branch_prefix,
        branch=branch,
        evidence=items,
        summary=summary,
        summary_name=name,
        push=push,
        write_body=write,
        to=to,
    )
    if pr_body is None:
        sys.stdout.write(outcome.pr_body)
    plan = outcome.plan
    where = f"; pushed to {outcome.pushed_to}" if outcome.pushed_to else ""
    body = f"; PR body in {pr_body}" if pr_body is not None else ""
    count = plan.taken_back_total
    passed = len(plan.passed_over)
    plural = "s" if passed != 1 else ""
    skipped = f"; {passed} later commit{plural} passed over, their dvc.lock stale"
    skipped = skipped if passed else ""
    typer.echo(
        f"created branch {plan.branch}: restores {plan.restored.bento_tag} (the tree of "
        f"{plan.restored_commit.short}{skipped}) in place of {plan.removed.bento_tag}, taking "
        f"back {count} commit{'s' if count != 1 else ''} of {plan.base}; {plan.base} untouched"
        f"{where}{body}",
        err=True,
    )
    if plan.lock_mismatches:
        typer.echo(
            f"warning: dvc.lock of {plan.restored_commit.short} does not match it "
            f"({plan.lock_mismatches[0]}): dvc repro on {plan.branch} re-runs stages",
            err=True,
        )


@app.command("serve", epilog=epilog(ok="stopped"))
def serve(
    token_file: Path = typer.Option(
        ..., "--token-file", help="File holding the shared bearer token Alertmanager sends."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: loopback)."),
    port: int = typer.Option(9095, "--port", min=1, max=65535, help="Port to listen on."),
    repo: Path = RepoOption,
    base: str | None = BaseOption,
    params: Path | None = ParamsOption,
) -> None:
    """Receive Alertmanager webhooks: a firing alert about the release --base pins now
    (its bento_tag label) prepares the branch restoring the last good release."""
    import uvicorn

    from mlgitops.revert.server import ServerSettings, create_app, read_token

    loaded = _params(repo, params)
    settings = ServerSettings.from_params(
        loaded,
        repo=repo.absolute(),
        base=base,
        token=read_token(token_file),
        pr_body_dir=_in_repo(repo.absolute(), loaded.revert.pr_body_dir),
        monitor_summary=_in_repo(repo.absolute(), loaded.paths.monitor_summary),
    )
    typer.echo(f"mlgitops revert: listening on http://{host}:{port}/alerts", err=True)
    app = create_app(settings, log=lambda line: typer.echo(f"mlgitops revert: {line}", err=True))
    uvicorn.run(app, host=host, port=port, log_level="warning")
