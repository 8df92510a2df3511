"""`mlgitops deploy | rollback | history`: deploy a Git revision's manifests to Kubernetes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # imported lazily at run time, so `mlgitops --help` stays fast
    from mlgitops.deploy.deploy import DeployReport, Settings

_ENV_HELP = "Environment: a directory under k8s/overlays/."
_TIMEOUT_HELP = "Seconds to wait for the rollout before it counts as failed (and is rolled back)."

EnvOption = typer.Option(..., "--env", "-e", help=_ENV_HELP)
RepoOption = typer.Option(
    Path(), "--repo", help="The Git repository holding k8s/ (default: the current directory)."
)
KubeconfigOption = typer.Option(
    None, "--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: $KUBECONFIG)."
)
ContextOption = typer.Option(None, "--context", help="Kubeconfig context to use.")
TimeoutOption = typer.Option(600.0, "--timeout", min=1.0, help=_TIMEOUT_HELP)


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _settings(
    repo: Path, kubeconfig: str | None, context: str | None, timeout: float = 600.0
) -> Settings:
    from mlgitops.deploy.deploy import Settings

    # KUBECONFIG may list several files; the client merges them when given none explicitly.
    explicit = kubeconfig if kubeconfig and ":" not in kubeconfig else None
    return Settings(repo=repo, kubeconfig=explicit, context=context, timeout=timeout, log=_log)


def _summary(report: DeployReport) -> str:
    timings = " ".join(f"{k}={v:.3f}s" for k, v in report.timings.phases.items())
    return f"timings: {timings} overhead={report.timings.overhead:.3f}s"


def deploy_command(
    env: str = EnvOption,
    rev: str = typer.Option("HEAD", "--rev", help="Git revision to deploy."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the server-side diff of what would change; change nothing."
    ),
    timeout: float = TimeoutOption,
    repo: Path = RepoOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Deploy the manifests of a Git revision (rendered from Git objects) to an environment.
    Exits 28, changing nothing, for a revision whose committed gate verdict is not PASS or is
    about another model than its release pins."""
    from mlgitops.deploy.deploy import deploy

    settings = _settings(repo, kubeconfig, context, timeout)
    report = deploy(env, rev, dry_run=dry_run, settings=settings)
    target = report.target
    if dry_run:
        if report.diff:
            sys.stdout.write(report.diff)
            typer.echo(f"dry run: {target.short} would change the objects above in {env}", err=True)
        else:
            typer.echo(f"dry run: {target.short} changes nothing in {env}", err=True)
        return
    entry = report.entry
    assert entry is not None
    typer.echo(
        f"deployed {target.short} to {env} ({target.namespace}/{target.deployment_name}): "
        f"{target.image}, {target.model_hash} (history #{entry.seq})"
    )
    _log(_summary(report))


def rollback_command(
    env: str = EnvOption,
    to: int | None = typer.Option(
        None, "--to", help="History entry to redeploy (default: the previous model)."
    ),
    timeout: float = TimeoutOption,
    repo: Path = RepoOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Redeploy the revision of an earlier successful deploy (nothing is rebuilt)."""
    from mlgitops.deploy.deploy import rollback

    settings = _settings(repo, kubeconfig, context, timeout)
    report = rollback(env, to, settings=settings)
    entry = report.entry
    assert entry is not None
    typer.echo(
        f"rolled {env} back to #{entry.rollback_of}: {report.target.short} "
        f"{report.target.image} (history #{entry.seq})"
    )
    _log(_summary(report))


def history_command(
    env: str = EnvOption,
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON lines."),
    repo: Path = RepoOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """List the deploys recorded in the environment's history ConfigMap, oldest first."""
    from mlgitops.deploy.deploy import read_history

    entries = read_history(env, settings=_settings(repo, kubeconfig, context))
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.model_dump(), sort_keys=True))
        return
    if not entries:
        typer.echo(f"no deploys recorded for {env}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"deploy history: {env}")
    for column in ("#", "finished", "kind", "outcome", "commit", "image", "model", "note"):
        table.add_column(column, overflow="fold")
    for e in entries:
        note = e.message if not e.succeeded else (f"of #{e.rollback_of}" if e.rollback_of else "")
        table.add_row(
            str(e.seq),
            e.finished_at,
            e.kind,
            e.outcome,
            e.commit[:12],
            e.image.rsplit("/", 1)[-1],
            e.model_hash.split(":", 1)[-1][:12],
            note,
        )
    Console(width=160).print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="deploy")(deploy_command)
    app.command(name="rollback")(rollback_command)
    app.command(name="history")(history_command)
