"""`mlgitops deploy | rollback | history`: deploy a Git revision's manifests to Kubernetes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlgitops.deploy import DEFAULT_LEASE_SECONDS, DEFAULT_LOCK_WAIT_SECONDS

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
RequireDigestOption = typer.Option(
    False,
    "--require-digest",
    help="Refuse (exit 32) when the registry cannot pin the image's tag to a digest, instead of "
    "applying the tag; recommended for production.",
)
RegistryTlsOption = typer.Option(
    True,
    "--registry-tls-verify/--no-registry-tls-verify",
    help="Check the image registry's TLS certificate (off: HTTPS unchecked, then HTTP).",
)
AuthfileOption = typer.Option(
    None,
    "--authfile",
    envvar="REGISTRY_AUTH_FILE",
    help="Registry credentials (default: the file `buildah login` writes).",
)
LockWaitOption = typer.Option(
    DEFAULT_LOCK_WAIT_SECONDS,
    "--lock-wait",
    min=0.0,
    help="Seconds to wait for another deploy's lease to be released or to expire (it expires "
    "after its duration without a renewal seen); then exit 11.",
)
AllowUnverifiedOption = typer.Option(
    False,
    "--allow-unverified",
    help="Deploy a release whose signed attestation is missing or fails `mlgitops verify` "
    "(else exit 35/36); the history records it as verified: false.",
)
TrustRootDeployOption = typer.Option(
    None,
    "--trust-root",
    help="The trusted public keys (default: trust/keys.yaml of --repo's working tree, not the "
    "deployed revision's).",
)
LeaseOption = typer.Option(
    DEFAULT_LEASE_SECONDS,
    "--lease-duration",
    min=3,
    help="Seconds this deploy's lease lasts without a renewal.",
)


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _settings(
    repo: Path,
    kubeconfig: str | None,
    context: str | None,
    timeout: float = 600.0,
    *,
    require_digest: bool = False,
    registry_tls_verify: bool = True,
    authfile: Path | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT_SECONDS,
    lease_duration: int = DEFAULT_LEASE_SECONDS,
    allow_unverified: bool = False,
    trust_root: Path | None = None,
) -> Settings:
    from mlgitops.deploy.deploy import Settings
    from mlgitops.deploy.images import RegistryAccess

    # KUBECONFIG may list several files; the client merges them when given none explicitly.
    explicit = kubeconfig if kubeconfig and ":" not in kubeconfig else None
    registry = RegistryAccess(
        tls_verify=registry_tls_verify, authfile=authfile, require_digest=require_digest
    )
    return Settings(
        repo=repo,
        kubeconfig=explicit,
        context=context,
        timeout=timeout,
        lease_seconds=lease_duration,
        lock_wait=lock_wait,
        registry=registry,
        log=_log,
        allow_unverified=allow_unverified,
        trust_root=trust_root,
    )


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
    require_digest: bool = RequireDigestOption,
    registry_tls_verify: bool = RegistryTlsOption,
    authfile: Path | None = AuthfileOption,
    lock_wait: float = LockWaitOption,
    lease_duration: int = LeaseOption,
    allow_unverified: bool = AllowUnverifiedOption,
    trust_root: Path | None = TrustRootDeployOption,
    repo: Path = RepoOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Deploy the manifests of a Git revision (rendered from Git objects) to an environment,
    with the image pinned to the digest its registry serves. A revision whose committed gate
    verdict is not PASS, or is about another model than its release pins, is refused before
    anything changes, and so is one whose signed attestation does not verify against the
    deployer's trust root (unless --allow-unverified); SIGTERM or SIGINT records the attempt
    as interrupted and releases the lease."""
    from mlgitops.deploy.deploy import deploy
    from mlgitops.deploy.signals import interruptible

    settings = _settings(
        repo,
        kubeconfig,
        context,
        timeout,
        require_digest=require_digest,
        registry_tls_verify=registry_tls_verify,
        authfile=authfile,
        lock_wait=lock_wait,
        lease_duration=lease_duration,
        allow_unverified=allow_unverified,
        trust_root=trust_root,
    )
    with interruptible():
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
        f"{entry.applied_image}, {target.model_hash} (history #{entry.seq})"
    )
    _log(_summary(report))


def rollback_command(
    env: str = EnvOption,
    to: int | None = typer.Option(
        None, "--to", help="History entry to redeploy (default: the previous model)."
    ),
    timeout: float = TimeoutOption,
    require_digest: bool = RequireDigestOption,
    registry_tls_verify: bool = RegistryTlsOption,
    authfile: Path | None = AuthfileOption,
    lock_wait: float = LockWaitOption,
    lease_duration: int = LeaseOption,
    allow_unverified: bool = AllowUnverifiedOption,
    trust_root: Path | None = TrustRootDeployOption,
    repo: Path = RepoOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Redeploy the revision of an earlier successful deploy, pinned to the digest it recorded
    (nothing is rebuilt). Exit codes as for `deploy`."""
    from mlgitops.deploy.deploy import rollback
    from mlgitops.deploy.signals import interruptible

    settings = _settings(
        repo,
        kubeconfig,
        context,
        timeout,
        require_digest=require_digest,
        registry_tls_verify=registry_tls_verify,
        authfile=authfile,
        lock_wait=lock_wait,
        lease_duration=lease_duration,
        allow_unverified=allow_unverified,
        trust_root=trust_root,
    )
    with interruptible():
        report = rollback(env, to, settings=settings)
    entry = report.entry
    assert entry is not None
    typer.echo(
        f"rolled {env} back to #{entry.rollback_of}: {report.target.short} "
        f"{entry.applied_image} (history #{entry.seq})"
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
    columns = ("#", "finished", "kind", "outcome", "commit", "image", "digest", "model", "note")
    for column in columns:
        table.add_column(column, overflow="fold")
    for e in entries:
        note = e.message if not e.succeeded else (f"of #{e.rollback_of}" if e.rollback_of else "")
        digest = (e.image_digest or e.image_id).split(":", 1)[-1][:12]
        table.add_row(
            str(e.seq),
            e.finished_at,
            e.kind,
            e.outcome,
            e.commit[:12],
            e.image.rsplit("/", 1)[-1],
            f"{digest} ({e.digest_source})" if digest else "",
            e.model_hash.split(":", 1)[-1][:12],
            note,
        )
    Console(width=160).print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    from mlgitops import errors as e
    from mlgitops.cli.exitcodes import epilog

    rollout = (
        e.ArtifactError,
        e.GitError,
        e.DeployError,
        e.RolloutFailedError,
        e.DeployLockedError,
        e.DeployLeaseLostError,
        e.ImageDigestError,
        e.DeployInterruptedError,
    )
    attested = (e.AttestationError, e.AttestationMissingError, e.TrustRootError)
    app.command(name="deploy", epilog=epilog(*rollout, *attested, e.ReleaseNotPassedError))(
        deploy_command
    )
    app.command(name="rollback", epilog=epilog(*rollout, *attested))(rollback_command)
    history = epilog(e.ArtifactError, e.DeployError, e.GitError)
    app.command(name="history", epilog=history)(history_command)
