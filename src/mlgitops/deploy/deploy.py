"""`mlgitops deploy | rollback | history`: the orchestration.

A deploy renders a revision from Git objects, takes the environment's Lease, dry-runs every
object (so a rejected manifest stops it before the first write), applies them server-side,
waits for the rollout, checks the pods run the expected model and appends the outcome to the
in-cluster history. A failed rollout re-applies the last successful revision from Git, waits for
it and records both outcomes. Nothing is built: images are named by content hash in Git.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlgitops.deploy.apply import apply_all, bootstrap_hint, dry_run_diff, validate_all
from mlgitops.deploy.history import History, HistoryEntry, Kind, last_success, now_iso
from mlgitops.deploy.kube import Kube, KubeError
from mlgitops.deploy.lock import DEFAULT_LEASE_SECONDS, DeployLock, default_identity
from mlgitops.deploy.render import RenderedRevision, render
from mlgitops.deploy.rollout import (
    DEFAULT_CRASHLOOP_RESTARTS,
    RolloutFailure,
    RolloutWatcher,
    apply_time,
    expected_pod_mismatches,
)
from mlgitops.errors import DeployError, MlgitopsError, RolloutFailedError
from mlgitops.git import resolve_commit
from mlgitops.release import ANNOTATION_PREFIX
from mlgitops.verdict import require_released

Log = Callable[[str], None]
DEFAULT_TIMEOUT_S = 600.0


def _quiet(_: str) -> None:
    pass


@dataclass
class Timings:
    """Wall-clock seconds per phase; `overhead` is everything but waiting for pods."""

    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.phases.values())

    @property
    def overhead(self) -> float:
        return sum(v for k, v in self.phases.items() if not k.startswith("wait"))


@dataclass
class DeployReport:
    environment: str
    target: RenderedRevision
    entry: HistoryEntry | None = None  # None for a dry run
    rollback_entry: HistoryEntry | None = None
    diff: str | None = None
    timings: Timings = field(default_factory=Timings)


@dataclass
class Settings:
    """Where and how; shared by deploy, rollback and history."""

    repo: Path = Path()
    kubeconfig: str | Path | None = None
    context: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    identity: str | None = None
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    crashloop_restarts: int = DEFAULT_CRASHLOOP_RESTARTS
    log: Log = _quiet


class _Session:
    def __init__(self, settings: Settings, kube: Kube | None, timings: Timings) -> None:
        self.settings = settings
        self.log = settings.log
        self.timings = timings
        self._kube = kube
        self._own_kube = kube is None
        self.identity = settings.identity or default_identity()

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            with self.timings.phase("connect"):
                self._kube = Kube.connect(self.settings.kubeconfig, self.settings.context)
        return self._kube

    def close(self) -> None:
        if self._own_kube and self._kube is not None:
            self._kube.close()

    def render(self, rev: str, environment: str) -> RenderedRevision:
        with self.timings.phase("render"):
            rendered = render(self.settings.repo, rev, environment)
        self.log(
            f"rendered k8s/overlays/{environment} at {rendered.short}: "
            f"{len(rendered.objects)} objects, image {rendered.image}"
        )
        return rendered

    def history(self, rendered: RenderedRevision) -> History:
        return History(self.kube, rendered.namespace, rendered.deployment_name)

    def lock(self, rendered: RenderedRevision) -> DeployLock:
        """The environment's Lease, taken; DeployLockedError if another deploy holds it."""
        lock = DeployLock(
            self.kube,
            rendered.namespace,
            rendered.deployment_name,
            identity=self.identity,
            duration_s=self.settings.lease_seconds,
        )
        with self.timings.phase("lock"):
            try:
                lock.acquire()
            except KubeError as error:
                if error.missing_namespace:
                    raise DeployError(
                        bootstrap_hint(rendered.namespace, rendered.environment)
                    ) from None
                raise
        return lock

    # ------------------------------------------------------------------------- one rollout

    def roll_out(self, rendered: RenderedRevision, phase: str) -> None:
        """Apply `rendered` and wait until its pods run its model; RolloutFailure otherwise."""
        kube, env = self.kube, rendered.environment
        with self.timings.phase(f"validate{phase}"):
            validate_all(kube, rendered.objects, env)
        with self.timings.phase(f"apply{phase}"):
            started = datetime.now(UTC)
            try:
                applied = apply_all(kube, rendered.objects, env)
            except DeployError as error:
                # Some objects may be written already: treat it as a failed rollout, so the last
                # good revision is re-applied and nothing stays half-applied.
                raise RolloutFailure("ApplyFailed", str(error)) from None
        self.log(f"applied {len(rendered.objects)} objects to {rendered.namespace} (server-side)")
        # The server's clock when it says: condition times are the server's too.
        name = rendered.deployment_name
        live = next(
            (o for o in applied if o.get("kind") == "Deployment" and o["metadata"]["name"] == name),
            {},
        )
        applied_at = apply_time(live) or started
        watcher = RolloutWatcher(
            kube,
            rendered.namespace,
            rendered.deployment_name,
            crashloop_restarts=self.settings.crashloop_restarts,
            applied_at=applied_at,
            log=self.log,
        )
        with self.timings.phase(f"wait{phase}"):
            state = watcher.wait(self.settings.timeout)
        with self.timings.phase(f"verify{phase}"):
            expected = {
                k: v for k, v in rendered.pod_annotations.items() if k.startswith(ANNOTATION_PREFIX)
            }
            problems = expected_pod_mismatches(state.pods, expected, rendered.image)
        if problems:
            raise RolloutFailure("WrongModel", "; ".join(problems[:3]))
        self.log(f"rollout complete: {state.message}")

    def record(
        self,
        history: History,
        rendered: RenderedRevision,
        kind: Kind,
        started_at: str,
        failure: RolloutFailure | None = None,
        rollback_of: int | None = None,
    ) -> HistoryEntry:
        entry = HistoryEntry(
            kind=kind,
            outcome="failed" if failure else "succeeded",
            environment=rendered.environment,
            revision=rendered.revision,
            commit=rendered.commit,
            image=rendered.image,
            model_hash=rendered.model_hash,
            bento_tag=rendered.bento_tag,
            started_at=started_at,
            finished_at=now_iso(),
            deployed_by=self.identity,
            message=f"{failure.reason}: {failure.message}" if failure else "",
            rollback_of=rollback_of,
        )
        with self.timings.phase("history"):
            stored = history.append(entry)
        self.log(f"recorded #{stored.seq}: {kind} {stored.outcome}")
        return stored

    # ----------------------------------------------------- a rollout with automatic rollback

    def deploy_locked(
        self,
        rendered: RenderedRevision,
        kind: Kind,
        report: DeployReport,
        rollback_of: int | None = None,
    ) -> DeployReport:
        history = self.history(rendered)
        with self.timings.phase("history"):
            previous = last_success(history.entries())
        started = now_iso()
        try:
            self.roll_out(rendered, "")
        except RolloutFailure as failure:
            report.entry = self.record(history, rendered, kind, started, failure, rollback_of)
            self.log(f"rollout of {rendered.short} failed: {failure.reason}: {failure.message}")
            raise self._roll_back(history, rendered, failure, previous, report) from None
        report.entry = self.record(history, rendered, kind, started, rollback_of=rollback_of)
        return report

    def _roll_back(
        self,
        history: History,
        failed: RenderedRevision,
        failure: RolloutFailure,
        previous: HistoryEntry | None,
        report: DeployReport,
    ) -> RolloutFailedError:
        what = f"rollout of {failed.short} ({failed.image}) to {failed.environment} failed: "
        what += f"{failure.reason}: {failure.message}"
        if previous is None:
            return RolloutFailedError(
                f"{what}; no earlier successful deploy to roll back to, so {failed.short} "
                "stays applied"
            )
        if previous.commit == failed.commit:
            return RolloutFailedError(
                f"{what}; the last successful deploy (#{previous.seq}) is this same commit, "
                "so there is nothing older to roll back to"
            )
        self.log(f"rolling back to #{previous.seq}: {previous.commit[:12]} ({previous.image})")
        started = now_iso()
        try:
            target = self.render(previous.commit, failed.environment)
        except MlgitopsError as error:  # git, a broken release record, manifests
            return RolloutFailedError(
                f"{what}; rolling back to #{previous.seq} failed: cannot render "
                f"{previous.commit[:12]}: {error}"
            )
        try:
            try:
                self.roll_out(target, "_rollback")
            except DeployError as error:  # rejected before any write, or the API went away
                raise RolloutFailure("RollbackFailed", str(error)) from None
        except RolloutFailure as second:
            report.rollback_entry = self.record(
                history, target, "auto-rollback", started, second, previous.seq
            )
            return RolloutFailedError(
                f"{what}; the automatic rollback to #{previous.seq} ({previous.commit[:12]}) "
                f"also failed: {second.reason}: {second.message}. The environment needs attention"
            )
        report.rollback_entry = self.record(
            history, target, "auto-rollback", started, rollback_of=previous.seq
        )
        return RolloutFailedError(
            f"{what}; rolled back to #{previous.seq} ({previous.commit[:12]}, {previous.image}), "
            "which is running again"
        )


# ---------------------------------------------------------------------------------- the API


def _require_released(repo: Path, rev: str) -> str:
    """The commit of `rev`, if its committed gate verdict passed its release; else the refusal
    (ReleaseNotPassedError, exit 28), before anything is rendered or written."""
    commit = resolve_commit(repo, rev)
    require_released(repo, commit, rev)
    return commit


def deploy(
    environment: str,
    rev: str = "HEAD",
    *,
    dry_run: bool = False,
    settings: Settings | None = None,
    kube: Kube | None = None,
) -> DeployReport:
    """Deploy the manifests of `rev` to `environment` (or, with dry_run, diff them)."""
    settings = settings or Settings()
    timings = Timings()
    session = _Session(settings, kube, timings)
    try:
        # A revision whose committed gate verdict did not pass its release is no release.
        checked = _require_released(settings.repo, rev)
        target = session.render(rev, environment)
        if target.commit != checked:  # `rev` moved meanwhile
            _require_released(settings.repo, target.commit)
        report = DeployReport(environment, target, timings=timings)
        if dry_run:
            with timings.phase("diff"):
                report.diff = dry_run_diff(session.kube, target.objects, environment)
            return report
        lock = session.lock(target)
        try:
            return session.deploy_locked(target, "deploy", report)
        finally:
            with timings.phase("unlock"):
                lock.release()
    finally:
        session.close()


def read_history(
    environment: str,
    *,
    rev: str = "HEAD",
    settings: Settings | None = None,
    kube: Kube | None = None,
) -> list[HistoryEntry]:
    """The deploy history of `environment`; its namespace comes from the overlay at `rev`."""
    settings = settings or Settings()
    session = _Session(settings, kube, Timings())
    try:
        target = render(settings.repo, rev, environment)
        return session.history(target).entries()
    finally:
        session.close()


def choose_rollback(entries: list[HistoryEntry], to: int | None) -> HistoryEntry:
    """The entry `rollback` redeploys: `to`, or the last success before the current model."""
    successes = [e for e in entries if e.succeeded]
    if to is not None:
        match = next((e for e in entries if e.seq == to), None)
        if match is None:
            known = ", ".join(str(e.seq) for e in successes) or "none"
            raise DeployError(f"no history entry #{to}; successful entries: {known}")
        if not match.succeeded:
            raise DeployError(f"entry #{to} is a failed deploy; roll back to a successful one")
        return match
    if not successes:
        raise DeployError("no successful deploy in the history to roll back to")
    current = successes[-1]
    earlier = successes[:-1]
    for pick in (
        lambda e: e.image != current.image,
        lambda e: e.commit != current.commit,
    ):
        found = next((e for e in reversed(earlier) if pick(e)), None)
        if found is not None:
            return found
    raise DeployError(
        f"nothing to roll back to: every successful deploy runs {current.commit[:12]}"
    )


def rollback(
    environment: str,
    to: int | None = None,
    *,
    rev: str = "HEAD",
    settings: Settings | None = None,
    kube: Kube | None = None,
) -> DeployReport:
    """Redeploy the revision of an earlier successful history entry (from Git, not rebuilt)."""
    settings = settings or Settings()
    timings = Timings()
    session = _Session(settings, kube, timings)
    try:
        here = session.render(rev, environment)
        lock = session.lock(here)
        try:
            with timings.phase("history"):
                entry = choose_rollback(session.history(here).entries(), to)
            session.log(f"rolling back to #{entry.seq}: {entry.commit[:12]} ({entry.image})")
            target = session.render(entry.commit, environment)
            if (target.namespace, target.deployment_name) != (here.namespace, here.deployment_name):
                raise DeployError(
                    f"#{entry.seq} deploys {target.namespace}/{target.deployment_name}, not "
                    f"{here.namespace}/{here.deployment_name}; roll back with `deploy --rev`"
                )
            report = DeployReport(environment, target, timings=timings)
            return session.deploy_locked(target, "rollback", report, rollback_of=entry.seq)
        finally:
            with timings.phase("unlock"):
                lock.release()
    finally:
        session.close()
