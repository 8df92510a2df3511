"""`mlgitops deploy | rollback | history`: the orchestration.

A deploy renders a revision from Git objects, pins its image tag to the digest the registry
serves (`images`), takes the environment's Lease, dry-runs every object (so a rejected manifest
stops it before the first write), applies them server-side, waits for the rollout, checks the
pods run the expected model and bytes (their imageIDs) and appends the outcome to the
in-cluster history. A failed rollout re-applies the last successful revision, pinned to the
digest recorded for it, waits for it and records both outcomes. Nothing is built.

Before every write (each object applied, each history entry, a rollback) the lease is checked:
a deploy that lost it stops there. SIGTERM and SIGINT record the attempt as interrupted and
release the lease (`signals`).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlgitops.deploy import DEFAULT_LEASE_SECONDS, DEFAULT_LOCK_WAIT_SECONDS, images
from mlgitops.deploy.apply import apply_all, bootstrap_hint, dry_run_diff, validate_all
from mlgitops.deploy.history import (
    History,
    HistoryEntry,
    Kind,
    Outcome,
    last_bytes_of,
    last_success,
    now_iso,
)
from mlgitops.deploy.images import Expected, ImagePin, RegistryAccess, RunningImage, with_image
from mlgitops.deploy.kube import Kube, KubeError
from mlgitops.deploy.lock import Clocks, DeployLock, default_identity
from mlgitops.deploy.render import RenderedRevision, render
from mlgitops.deploy.rollout import (
    DEFAULT_CRASHLOOP_RESTARTS,
    RolloutFailure,
    RolloutWatcher,
    apply_time,
    expected_pod_mismatches,
)
from mlgitops.deploy.signals import Interrupted, critical, signal_of
from mlgitops.errors import (
    DeployError,
    DeployInterruptedError,
    DeployLeaseLostError,
    MlgitopsError,
    RolloutFailedError,
)
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
    pin: ImagePin | None = None
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
    lock_wait: float = DEFAULT_LOCK_WAIT_SECONDS
    crashloop_restarts: int = DEFAULT_CRASHLOOP_RESTARTS
    registry: RegistryAccess = field(default_factory=RegistryAccess)
    clocks: Clocks | None = None  # the lease's clocks (tests inject them)
    log: Log = _quiet
    # The public keys a release's attestation must be signed with: the deployer's own
    # (default: trust/keys.yaml of `repo`'s working tree, never the deployed revision's).
    trust_root: Path | None = None
    # Deploy a release whose attestation fails or is missing, recorded as `verified: false`.
    allow_unverified: bool = False

    @property
    def trust_root_path(self) -> Path:
        from mlgitops.attest import DEFAULT_TRUST_ROOT

        return self.trust_root if self.trust_root is not None else self.repo / DEFAULT_TRUST_ROOT


@dataclass
class _Attempt:
    """A rollout under way and not recorded yet: what SIGTERM records as interrupted."""

    history: History
    rendered: RenderedRevision
    pin: ImagePin
    kind: Kind
    started_at: str
    rollback_of: int | None
    phase: str = "validating"


class _Session:
    def __init__(self, settings: Settings, kube: Kube | None, timings: Timings) -> None:
        self.settings = settings
        self.log = settings.log
        self.timings = timings
        self._kube = kube
        self._own_kube = kube is None
        self.identity = settings.identity or default_identity()
        self.lease: DeployLock | None = None
        self.attempt: _Attempt | None = None
        self.interrupted_entry: HistoryEntry | None = None
        # commit -> the image digest its attestation signed ("" when deployed unverified).
        self.verified: dict[str, str] = {}

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

    def resolve(self, rendered: RenderedRevision) -> ImagePin:
        """The release's image pinned to the digest its registry serves now."""
        with self.timings.phase("resolve"):
            pin = images.resolve(rendered.image, self.settings.registry, self.log)
        if pin.digest:
            self.log(f"image {pin.applied} (digest from the {pin.source})")
        return pin

    def going_back(
        self, pin: ImagePin, rendered: RenderedRevision, entries: list[HistoryEntry]
    ) -> ImagePin:
        """`pin`, or the digest the history recorded for its tag when this deploy goes back to a
        tag that ran here before and has been pushed again since: a rollback by Git revision
        (`mlgitops revert`, `--rev OLDER`) restores the bytes that ran, as `rollback` does.
        Redeploying the tag that runs now takes what the registry serves (a rebuild on a newer
        base). Either way one line says the tag was pushed again."""
        before = last_bytes_of(entries, rendered.image)
        if pin.source != "registry" or before is None or before.image_digest in ("", pin.digest):
            return pin
        note = (
            f"note: {rendered.image} ran as {before.image_digest} in #{before.seq}; the "
            f"registry now serves {pin.digest} under that tag (pushed again)"
        )
        current = last_success(entries)
        if current is not None and current.image == rendered.image:
            self.log(note)
            return pin
        self.log(
            f"{note}; going back to it, this deploy pins {before.image_digest}, the bytes it "
            "ran (deploy it again to take the new ones)"
        )
        return images.restore(rendered.image, before.image_digest, self.settings.registry)

    def pin_of(self, entry: HistoryEntry, target: RenderedRevision) -> ImagePin:
        """The bytes `entry` ran, exactly: its recorded digest, else the tag resolved anew."""
        if entry.image_digest and entry.image == target.image:
            return images.restore(target.image, entry.image_digest, self.settings.registry)
        return self.resolve(target)

    def verify(self, commit: str, rev: str) -> None:
        """The release's attestation must hold against the deployer's trust root (exit 35/36),
        unless `allow_unverified`: then the failure is logged and recorded."""
        from mlgitops.attest.verify import verify
        from mlgitops.errors import AttestationError, TrustRootError

        with self.timings.phase("attestation"):
            try:
                verified = verify(
                    self.settings.repo, commit, trust_root=self.settings.trust_root_path
                )
            except (AttestationError, TrustRootError) as error:
                if not self.settings.allow_unverified:
                    raise type(error)(
                        f"refusing to deploy {rev} ({commit[:12]}): {error}"
                    ) from None
                self.log(f"not verified, deploying anyway (--allow-unverified): {error}")
                self.verified[commit] = ""
                return
        self.verified[commit] = verified.image_digest
        self.log(
            f"verified {verified.bento_tag}: signed by key {verified.key_id} at "
            f"{verified.signed_at}, image {verified.image_digest[:19]}"
        )

    def attested_pin(self, rendered: RenderedRevision, pin: ImagePin) -> ImagePin:
        """The image the attestation signed: a registry digest that differs is refused (the tag
        was pushed again); a registry that could not be asked gets the signed digest."""
        from mlgitops.errors import AttestationError

        signed = self.verified.get(rendered.commit, "")
        if not signed:
            return pin
        if pin.digest and pin.digest != signed:
            raise AttestationError(
                f"refusing to deploy {rendered.short}: image {rendered.image} is "
                f"{pin.digest} ({pin.source}), but its attestation signed {signed}"
            )
        if not pin.digest:
            restored = images.restore(rendered.image, signed, self.settings.registry)
            self.log(f"image {restored.applied} (digest from the attestation)")
            return ImagePin(restored.image, signed, "attestation", restored.configs)
        return pin

    def history(self, rendered: RenderedRevision) -> History:
        return History(self.kube, rendered.namespace, rendered.deployment_name)

    # ------------------------------------------------------------------------- the lease

    @contextmanager
    def locked(self, rendered: RenderedRevision) -> Iterator[DeployLock]:
        """Hold the environment's Lease for the block (DeployLockedError if another deploy
        holds it and keeps renewing it). A signal in the block records the attempt under way
        as interrupted; the lease is released in any case."""
        lock = DeployLock(
            self.kube,
            rendered.namespace,
            rendered.deployment_name,
            identity=self.identity,
            duration_s=self.settings.lease_seconds,
            wait_s=self.settings.lock_wait,
            clocks=self.settings.clocks,
            log=self.log,
        )
        try:
            with self.timings.phase("lock"):
                try:
                    lock.acquire()
                except KubeError as error:
                    if error.missing_namespace:
                        raise DeployError(
                            bootstrap_hint(rendered.namespace, rendered.environment)
                        ) from None
                    raise
            self.lease = lock
            yield lock
        except (Interrupted, KeyboardInterrupt) as stop:
            with critical():
                self.interrupted_entry = self._record_interrupted(stop)
            raise
        finally:
            with critical(), self.timings.phase("unlock"):
                lock.release()
            self.lease = None

    def guard(self, before: str) -> None:
        """DeployLeaseLostError unless this deploy still holds its lease: call before writes."""
        if self.lease is not None:
            self.lease.check(before)

    # ------------------------------------------------------------------------- one rollout

    def roll_out(
        self, rendered: RenderedRevision, pin: ImagePin, expected: Expected, phase: str
    ) -> RunningImage:
        """Apply `rendered` with `pin`'s image and wait until its pods run its model and the
        expected bytes; RolloutFailure otherwise. What the pods run is returned."""
        kube, env = self.kube, rendered.environment
        objects = with_image(rendered.objects, rendered.deployment_name, pin.applied)
        self._set_phase("validating")
        with self.timings.phase(f"validate{phase}"):
            validate_all(kube, objects, env)
        self._set_phase("applying")
        with self.timings.phase(f"apply{phase}"):
            started = datetime.now(UTC)
            try:
                applied = apply_all(
                    kube, objects, env, before_each=lambda ref: self.guard(f"applying {ref}")
                )
            except DeployLeaseLostError:
                raise
            except DeployError as error:
                # Some objects may be written already: treat it as a failed rollout, so the last
                # good revision is re-applied and nothing stays half-applied.
                raise RolloutFailure("ApplyFailed", str(error)) from None
        self.log(f"applied {len(objects)} objects to {rendered.namespace} (server-side)")
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
            check=lambda: self.guard("waiting for the rollout"),
        )
        self._set_phase("waiting for the rollout")
        with self.timings.phase(f"wait{phase}"):
            state = watcher.wait(self.settings.timeout)
        self._set_phase("checking the pods")
        with self.timings.phase(f"verify{phase}"):
            annotations = {
                k: v for k, v in rendered.pod_annotations.items() if k.startswith(ANNOTATION_PREFIX)
            }
            problems = expected_pod_mismatches(state.pods, annotations, pin.applied)
            if problems:
                raise RolloutFailure("WrongModel", "; ".join(problems[:3]))
            problems, notes, running = images.check_running(state.pods, expected)
        for note in notes:
            self.log(f"note: {note}")
        if problems:
            raise RolloutFailure("WrongImage", "; ".join(problems[:3]))
        self.log(f"rollout complete: {state.message}")
        return running

    def _set_phase(self, phase: str) -> None:
        if self.attempt is not None:
            self.attempt.phase = phase

    def expected(self, pin: ImagePin, image: str, entries: list[HistoryEntry]) -> Expected:
        """What the pods must run: the pinned digest; unpinned, what this tag ran before."""
        if pin.digest:
            why = {
                "registry": f"the registry's digest for {image}",
                "git": "pinned in Git",
                "attestation": f"signed for {image} by the release's attestation",
            }
            return Expected(
                RunningImage(pin.digest),
                why.get(pin.source, f"recorded for {image} in the history"),
                pin.configs,
            )
        before = last_bytes_of(entries, image)
        if before is None:
            return Expected()
        return Expected(
            RunningImage(before.image_digest, before.image_id),
            f"what {image} ran in #{before.seq}: was the tag pushed again?",
        )

    def record(
        self,
        attempt: _Attempt,
        outcome: Outcome,
        message: str = "",
        running: RunningImage | None = None,
    ) -> HistoryEntry:
        rendered, pin = attempt.rendered, attempt.pin
        self.guard(f"recording the {outcome} {attempt.kind} of {rendered.short}")
        running = running or RunningImage(pin.digest)
        source = pin.source or ("pods" if running.digest or running.image_id else "")
        entry = HistoryEntry(
            kind=attempt.kind,
            outcome=outcome,
            environment=rendered.environment,
            revision=rendered.revision,
            commit=rendered.commit,
            image=rendered.image,
            model_hash=rendered.model_hash,
            bento_tag=rendered.bento_tag,
            started_at=attempt.started_at,
            finished_at=now_iso(),
            deployed_by=self.identity,
            message=message,
            rollback_of=attempt.rollback_of,
            image_digest=running.digest or pin.digest,
            image_id=running.image_id,
            digest_source=source,
            verified=(
                bool(self.verified[rendered.commit]) if rendered.commit in self.verified else None
            ),
            allow_unverified=self.settings.allow_unverified,
        )
        with critical(), self.timings.phase("history"):
            stored = attempt.history.append(entry)
            self.attempt = None
        self.log(f"recorded #{stored.seq}: {attempt.kind} {stored.outcome}")
        return stored

    def _record_interrupted(self, stop: BaseException) -> HistoryEntry | None:
        attempt = self.attempt
        if attempt is None or self.lease is None or not self.lease.held:
            return None
        name = signal.Signals(signal_of(stop)).name
        try:
            return self.record(attempt, "interrupted", f"{name} while {attempt.phase}")
        except DeployError as error:
            self.log(f"could not record the interrupted attempt: {error}")
            return None

    def interrupted(self, stop: BaseException, what: str) -> DeployInterruptedError:
        signum = signal_of(stop)
        name = signal.Signals(signum).name
        entry = self.interrupted_entry
        if entry is not None:
            done = (
                f"recorded as #{entry.seq} interrupted, lease released; {entry.commit[:12]} "
                "may still be rolling out: check `mlgitops history`, then redeploy or roll back"
            )
        else:
            done = "nothing was applied or recorded"
        return DeployInterruptedError(f"{what} interrupted by {name}: {done}", signum)

    # ----------------------------------------------------- a rollout with automatic rollback

    def deploy_locked(
        self,
        rendered: RenderedRevision,
        pin: ImagePin,
        kind: Kind,
        report: DeployReport,
        rollback_of: int | None = None,
    ) -> DeployReport:
        history = self.history(rendered)
        with self.timings.phase("history"):
            entries = history.entries()
        previous = last_success(entries)
        pin = report.pin = self.going_back(pin, rendered, entries)
        expected = self.expected(pin, rendered.image, entries)
        attempt = _Attempt(history, rendered, pin, kind, now_iso(), rollback_of)
        self.attempt = attempt
        try:
            running = self.roll_out(rendered, pin, expected, "")
        except RolloutFailure as failure:
            message = f"{failure.reason}: {failure.message}"
            report.entry = self.record(attempt, "failed", message)
            self.log(f"rollout of {rendered.short} failed: {message}")
            raise self._roll_back(history, rendered, pin, failure, previous, report) from None
        report.entry = self.record(attempt, "succeeded", running=running)
        return report

    def _roll_back(
        self,
        history: History,
        failed: RenderedRevision,
        failed_pin: ImagePin,
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
        # The same commit is worth going back to only for other bytes (a tag pushed again).
        if previous.commit == failed.commit and previous.image_digest in ("", failed_pin.digest):
            return RolloutFailedError(
                f"{what}; the last successful deploy (#{previous.seq}) is this same commit, "
                "so there is nothing older to roll back to"
            )
        self.guard(f"rolling back to #{previous.seq}")
        self.log(
            f"rolling back to #{previous.seq}: {previous.commit[:12]} ({previous.applied_image})"
        )
        started = now_iso()
        try:
            target = self.render(previous.commit, failed.environment)
            pin = self.pin_of(previous, target)
        except DeployLeaseLostError:
            raise
        except MlgitopsError as error:  # git, a broken release record, manifests, the registry
            return RolloutFailedError(
                f"{what}; rolling back to #{previous.seq} failed: cannot prepare "
                f"{previous.commit[:12]}: {error}"
            )
        attempt = _Attempt(history, target, pin, "auto-rollback", started, previous.seq)
        self.attempt = attempt
        expected = Expected(
            RunningImage(pin.digest, previous.image_id if not pin.digest else ""),
            f"recorded in #{previous.seq}",
            pin.configs,
        )
        try:
            try:
                running = self.roll_out(target, pin, expected, "_rollback")
            except DeployLeaseLostError:
                raise
            except DeployError as error:  # rejected before any write, or the API went away
                raise RolloutFailure("RollbackFailed", str(error)) from None
        except RolloutFailure as second:
            report.rollback_entry = self.record(
                attempt, "failed", f"{second.reason}: {second.message}"
            )
            return RolloutFailedError(
                f"{what}; the automatic rollback to #{previous.seq} ({previous.commit[:12]}) "
                f"also failed: {second.reason}: {second.message}. The environment needs attention"
            )
        report.rollback_entry = self.record(attempt, "succeeded", running=running)
        return RolloutFailedError(
            f"{what}; rolled back to #{previous.seq} ({previous.commit[:12]}, "
            f"{previous.applied_image}), which is running again"
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
        # Signed by the trusted release job, and what it signed is what this revision holds.
        session.verify(target.commit, rev)
        pin = session.attested_pin(target, session.resolve(target))
        report = DeployReport(environment, target, pin, timings=timings)
        if dry_run:
            with timings.phase("history"):
                pin = report.pin = session.going_back(
                    pin, target, session.history(target).entries()
                )
            objects = with_image(target.objects, target.deployment_name, pin.applied)
            with timings.phase("diff"):
                report.diff = dry_run_diff(session.kube, objects, environment)
            return report
        with session.locked(target):
            return session.deploy_locked(target, pin, "deploy", report)
    except (Interrupted, KeyboardInterrupt) as stop:
        raise session.interrupted(stop, f"the deploy of {rev} to {environment}") from None
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
            raise DeployError(
                f"entry #{to} is a {match.outcome} deploy; roll back to a successful one"
            )
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
    """Redeploy the revision of an earlier successful history entry (from Git, not rebuilt),
    pinned to the digest that entry recorded."""
    settings = settings or Settings()
    timings = Timings()
    session = _Session(settings, kube, timings)
    try:
        here = session.render(rev, environment)
        with session.locked(here):
            with timings.phase("history"):
                entry = choose_rollback(session.history(here).entries(), to)
            session.log(
                f"rolling back to #{entry.seq}: {entry.commit[:12]} ({entry.applied_image})"
            )
            target = session.render(entry.commit, environment)
            if (target.namespace, target.deployment_name) != (here.namespace, here.deployment_name):
                raise DeployError(
                    f"#{entry.seq} deploys {target.namespace}/{target.deployment_name}, not "
                    f"{here.namespace}/{here.deployment_name}; roll back with `deploy --rev`"
                )
            session.verify(target.commit, f"#{entry.seq}")
            pin = session.attested_pin(target, session.pin_of(entry, target))
            report = DeployReport(environment, target, pin, timings=timings)
            return session.deploy_locked(target, pin, "rollback", report, rollback_of=entry.seq)
    except (Interrupted, KeyboardInterrupt) as stop:
        raise session.interrupted(stop, f"the rollback of {environment}") from None
    finally:
        session.close()
