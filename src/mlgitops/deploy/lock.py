"""One deploy at a time per environment: a coordination.k8s.io/v1 Lease.

Expiry is judged the way client-go's leader election judges it: a deployer that finds the lease
held watches it and takes it only after it has seen no change (no renewal, no other write) for
the lease's own duration, timed on its own monotonic clock from the moment it saw the last change
(`LeaseObserver`). The `renewTime` a holder writes is for people; no deployer compares another
machine's wall clock with its own, so clock skew between deployers changes nothing.

The holder renews every third of the duration and counts its lease valid for two thirds of the
duration after it *sent* its last successful write, on its monotonic clock. Observers cannot take
it before a full duration after they saw that write land, so the last third is the margin for a
write still in flight. Past that (renewals failing, the process stalled) or once the lease is
taken over, the holder is `lost`: `check()` raises DeployLeaseLostError, and the deploy calls it
before every write. Taking the lease is a create (409 if it exists) or, for a released or
expired lease, a replace with the resourceVersion read (409 if anyone wrote in between).
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from mlgitops.deploy import DEFAULT_LEASE_SECONDS, DEFAULT_LOCK_WAIT_SECONDS
from mlgitops.deploy.kube import Kube, KubeError, Manifest
from mlgitops.deploy.signals import critical
from mlgitops.errors import DeployError, DeployLeaseLostError, DeployLockedError

LEASE_API = "coordination.k8s.io/v1"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Clocks:
    """The lock's clocks, injectable: `wall` only for the times written into the Lease (for
    people), `monotonic` for every decision, `sleep` for waiting on another holder."""

    wall: Callable[[], datetime] = _now
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def lease_name(deployment: str) -> str:
    return f"mlgitops-deploy-{deployment}"


def default_identity() -> str:
    """Who holds the lock, readable in the refusal message: user@host, pid and a nonce."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}/pid-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def micro_time(moment: datetime) -> str:
    """RFC 3339 with microseconds: the MicroTime format Lease times must use."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def lease_duration(spec: dict[str, Any], default: int = DEFAULT_LEASE_SECONDS) -> int:
    """The holder's declared duration; a missing or nonsensical one counts as `default`."""
    try:
        value = int(spec.get("leaseDurationSeconds") or default)
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


# ------------------------------------------------------------------------ the observer


@dataclass
class LeaseObserver:
    """What one deployer has seen of a lease someone else holds, on its own monotonic clock.

    Any change of the lease (a renewal or any other write moves its resourceVersion; a new
    holder or renewTime too) restarts the count; the lease is expired once this observer has
    seen no change for the lease's duration. As client-go's `observedTime`, never a comparison of
    the holder's timestamps with this machine's clock.
    """

    key: tuple[str, str, str] | None = None
    seen_at: float = 0.0
    changes: int = field(default=0)

    @staticmethod
    def _key(lease: Manifest) -> tuple[str, str, str]:
        spec = lease.get("spec") or {}
        return (
            str((lease.get("metadata") or {}).get("resourceVersion") or ""),
            str(spec.get("holderIdentity") or ""),
            str(spec.get("renewTime") or ""),
        )

    def observe(self, lease: Manifest, now: float) -> bool:
        """Record a read of the lease at `now`; True if it changed since the last read."""
        key = self._key(lease)
        if key == self.key:
            return False
        if self.key is not None:
            self.changes += 1
        self.key, self.seen_at = key, now
        return True

    def silent_for(self, now: float) -> float:
        return now - self.seen_at

    def expired(self, lease: Manifest, now: float) -> bool:
        return self.silent_for(now) >= lease_duration(lease.get("spec") or {})


# ------------------------------------------------------------------------------ the lock


class DeployLock:
    """Context manager holding the deploy Lease of one Deployment."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        deployment: str,
        *,
        identity: str | None = None,
        duration_s: int = DEFAULT_LEASE_SECONDS,
        wait_s: float = DEFAULT_LOCK_WAIT_SECONDS,
        clocks: Clocks | None = None,
        renew: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = lease_name(deployment)
        self.identity = identity or default_identity()
        self.duration_s = duration_s
        self.wait_s = wait_s
        self.clocks = clocks or Clocks()
        self.renew_interval = duration_s / 3
        self.renew_deadline = duration_s * 2 / 3
        self._renew = renew
        self._log = log
        self._lease: Manifest | None = None
        self._renewed_at = 0.0  # monotonic time the last successful write was sent
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None  # why the lock was lost while held, if it was

    # ---------------------------------------------------------------------------- acquire

    def _spec(self, now: datetime, transitions: int) -> dict[str, Any]:
        stamp = micro_time(now)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration_s,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    def acquire(self) -> None:
        """Take the lease, waiting up to `wait_s` for a held one to be released or to expire;
        DeployLockedError if it stayed held (renewed) all that time."""
        self._take()
        if self._renew:
            self._thread = threading.Thread(
                target=self._renew_loop, name="mlgitops-lease", daemon=True
            )
            self._thread.start()

    def _get(self) -> Manifest | None:
        return self.kube.get(LEASE_API, "Lease", self.name, self.namespace)

    def _take(self) -> None:
        mono = self.clocks.monotonic
        deadline = mono() + self.wait_s
        observer = LeaseObserver()
        said_waiting = False
        while True:
            live = self._get()
            if live is None:
                if self._write(lambda: self.kube.create(self._body())):
                    return
                continue  # created by someone else in between: read it
            spec = live.get("spec") or {}
            now = mono()
            observer.observe(live, now)
            holder = spec.get("holderIdentity")
            if not holder or holder == self.identity or observer.expired(live, now):
                # Released, ours already (a create whose answer was lost), or silent for its
                # whole duration: take it, compare-and-swap on the resourceVersion just read
                # (409 if anyone wrote since).
                transitions = int(spec.get("leaseTransitions") or 0) + 1
                taken = {**live, "spec": self._spec(self.clocks.wall(), transitions)}
                if self._write(lambda taken=taken: self.kube.replace(taken)):
                    if holder and holder != self.identity and self._log:
                        self._log(
                            f"took over lease {self.name} from {holder}: "
                            f"no renewal seen for {observer.silent_for(now):.0f} s"
                        )
                    return
                continue
            remaining = deadline - now
            if remaining <= 0:
                raise self._locked(spec, observer, now)
            if not said_waiting and self._log:
                self._log(
                    f"lease {self.name} is held by {spec.get('holderIdentity')}; waiting up to "
                    f"{self.wait_s:g} s for it to be released or to expire"
                )
                said_waiting = True
            to_expiry = lease_duration(spec) - observer.silent_for(now)
            poll = max(0.05, min(2.0, lease_duration(spec) / 10))
            self.clocks.sleep(max(0.0, min(poll, remaining, to_expiry)))

    def _write(self, call: Callable[[], Manifest]) -> bool:
        """Make the write that takes the lease; False on a 409 (someone else was first).
        A signal is held until the lease is stored, so a taken lease is always released."""
        with critical():
            sent = self.clocks.monotonic()
            try:
                lease = call()
            except KubeError as error:
                if error.status == 409:
                    return False
                raise
            with self._mutex:
                self._lease, self._renewed_at, self.lost = lease, sent, None
        return True

    def _body(self) -> Manifest:
        return {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "mlgitops"},
            },
            "spec": self._spec(self.clocks.wall(), 0),
        }

    def _locked(
        self, spec: dict[str, Any], observer: LeaseObserver, now: float
    ) -> DeployLockedError:
        holder = spec.get("holderIdentity") or "another deploy"
        since = spec.get("acquireTime") or "an unknown time"
        duration = lease_duration(spec)
        if observer.changes:
            seen = f"renewed {observer.changes} time(s) while this deploy waited {self.wait_s:g} s"
        else:
            seen = (
                f"no renewal seen in {observer.silent_for(now):.0f} s, but it expires only "
                f"after {duration} s without one (raise --lock-wait to wait for that)"
            )
        return DeployLockedError(
            f"another deploy to {self.namespace} is running: lease {self.name} is held by "
            f"{holder} since {since} ({seen}); retry when it finishes"
        )

    # ------------------------------------------------------------------------------ renew

    def _renew_loop(self) -> None:
        wait = self.renew_interval
        while not self._stop.wait(wait):
            try:
                renewed = self.renew()
            except DeployError as error:  # a bug-free path never gets here; stay safe anyway
                self.lost = self.lost or str(error)
                renewed = False
            if self.lost:
                return
            # After a failed renewal, try again soon: the deadline is only a third away.
            wait = self.renew_interval if renewed else max(0.05, self.duration_s / 20)

    def renew(self) -> bool:
        """One renewal; True if it was written. Sets `lost` when the lease can no longer be
        trusted: taken over or deleted (404, 409), or not renewed within the renew deadline."""
        with self._mutex:
            if self._lease is None or self.lost:
                return False
            if self._lapsed():
                return False
            lease = dict(self._lease)
            spec = dict(lease.get("spec") or {})
            spec["renewTime"] = micro_time(self.clocks.wall())
            lease["spec"] = spec
            sent = self.clocks.monotonic()
            try:
                self._lease = self.kube.replace(lease)
            except KubeError as error:
                if error.status in (404, 409):
                    taken = "deleted" if error.status == 404 else "taken over by another deploy"
                    self.lost = f"lease {self.name} was {taken}"
                # Else a transient error: the next renewal may succeed before the deadline.
                return False
            self._renewed_at = sent
            return True

    def _lapsed(self) -> bool:
        """True (and `lost` set) once the last successful write is older than the deadline."""
        silent = self.clocks.monotonic() - self._renewed_at
        if self.lost is None and silent > self.renew_deadline:
            self.lost = (
                f"lease {self.name} not renewed for {silent:.0f} s (stalled, or the API "
                f"unreachable), past its {self.renew_deadline:.0f} s renew deadline"
            )
        return self.lost is not None

    def check(self, before: str) -> None:
        """Raise DeployLeaseLostError unless the lease is still certainly held.

        Called before every write of a deploy. Lock-free on purpose: a renewal stuck in a slow
        request must not stall this check.
        """
        if self._lease is None:
            raise DeployLeaseLostError(f"the deploy lease {self.name} is not held")
        if self.lost is None:
            self._lapsed()
        if self.lost is not None:
            raise DeployLeaseLostError(
                f"{self.lost}; stopped before {before} and recorded nothing, since another "
                f"deploy may be running: see `mlgitops history`"
            )

    @property
    def held(self) -> bool:
        try:
            self.check("")
        except DeployLeaseLostError:
            return False
        return True

    # ---------------------------------------------------------------------------- release

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._mutex:
            lease, self._lease = self._lease, None
        if lease is None:
            return
        # Only ever delete our own lease, as we last wrote it: if anyone wrote since (a
        # takeover), it is theirs. The resourceVersion precondition closes the window between
        # this read and the delete.
        mine = (lease.get("metadata") or {}).get("resourceVersion")
        live = self._get()
        if live is None or (live.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        if live["metadata"].get("resourceVersion") != mine:
            return
        try:
            self.kube.delete(LEASE_API, "Lease", self.name, self.namespace, resource_version=mine)
        except KubeError as error:
            if error.status not in (404, 409):
                raise

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
