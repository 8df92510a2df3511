"""One deploy at a time per environment: a coordination.k8s.io/v1 Lease.

Taking the lock is a create (fails with 409 if the Lease exists) or, when the Lease is released
or expired, a replace that carries the resourceVersion just read (fails with 409 if someone else
took it in between). While held, a background thread renews it, so a crashed deploy frees the
environment after `duration_s` while a slow rollout keeps it.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from mlgitops.deploy.kube import Kube, KubeError
from mlgitops.errors import DeployError, DeployLockedError

DEFAULT_LEASE_SECONDS = 60
Clock = Callable[[], datetime]


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


def lease_expired(spec: dict[str, Any], now: datetime) -> bool:
    """Free to take: no holder, or not renewed within its own duration."""
    if not spec.get("holderIdentity"):
        return True
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or DEFAULT_LEASE_SECONDS)
    return renewed is None or renewed + timedelta(seconds=duration) < now


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
        clock: Clock = lambda: datetime.now(UTC),
        renew: bool = True,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = lease_name(deployment)
        self.identity = identity or default_identity()
        self.duration_s = duration_s
        self.clock = clock
        self._renew = renew
        self._lease: dict[str, Any] | None = None
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
        """Take the lease; DeployLockedError if another live deploy holds it."""
        self._take()
        if self._renew:
            self._thread = threading.Thread(
                target=self._renew_loop, name="mlgitops-lease", daemon=True
            )
            self._thread.start()

    def _take(self) -> None:
        # Two rounds: the lease can be released between our failed create and our read.
        for _ in range(2):
            now = self.clock()
            try:
                self._lease = self.kube.create(self._body(now))
                return
            except KubeError as error:
                if error.status != 409:
                    raise
            live = self.kube.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
            if live is None:
                continue
            spec = live.get("spec") or {}
            if not lease_expired(spec, now):
                raise self._locked(spec)
            # Released or expired: take it over, compare-and-swap on the resourceVersion read.
            live["spec"] = self._spec(now, int(spec.get("leaseTransitions") or 0) + 1)
            try:
                self._lease = self.kube.replace(live)
                return
            except KubeError as error:
                if error.status != 409:
                    raise
                # Another deploy took the stale lease first; the next round reports it.
        current = self.kube.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        raise self._locked((current or {}).get("spec") or {})

    def _body(self, now: datetime) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "mlgitops"},
            },
            "spec": self._spec(now, 0),
        }

    def _locked(self, spec: dict[str, Any]) -> DeployLockedError:
        holder = spec.get("holderIdentity") or "another deploy"
        since = spec.get("acquireTime") or "an unknown time"
        return DeployLockedError(
            f"another deploy to {self.namespace} is running: lease {self.name} is held by "
            f"{holder} since {since}; retry when it finishes (a crashed holder's lease "
            f"expires {spec.get('leaseDurationSeconds', self.duration_s)} s after its last renewal)"
        )

    # ------------------------------------------------------------------------------ renew

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration_s / 3):
            try:
                self.renew()
            except DeployError as error:
                self.lost = str(error)
                return

    def renew(self) -> None:
        with self._mutex:
            if self._lease is None:
                return
            lease = dict(self._lease)
            spec = dict(lease.get("spec") or {})
            spec["renewTime"] = micro_time(self.clock())
            lease["spec"] = spec
            try:
                self._lease = self.kube.replace(lease)
            except KubeError as error:
                if error.status in (404, 409):
                    raise DeployError(f"lost the deploy lease {self.name}: {error}") from None
                # A transient error: the next renewal may succeed before the lease expires.

    # ---------------------------------------------------------------------------- release

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._mutex:
            lease, self._lease = self._lease, None
        if lease is None or self.lost:
            return
        # Only ever delete our own lease: if it expired and someone took it over, it is theirs.
        # The resourceVersion precondition closes the window between this read and the delete.
        live = self.kube.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        if live is None or (live.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        try:
            self.kube.delete(
                "coordination.k8s.io/v1",
                "Lease",
                self.name,
                self.namespace,
                resource_version=live["metadata"].get("resourceVersion"),
            )
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
