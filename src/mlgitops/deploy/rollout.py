"""Wait for a Deployment rollout and check that its pods run the expected model.

`assess` is a pure function of the Deployment, its ReplicaSets and their pods, with the same
completion rule as `kubectl rollout status` (observedGeneration caught up; updated, total and
available replicas equal the desired count) plus early failure on ProgressDeadlineExceeded and
on pods that cannot start (crash loops, image pull errors).

A ProgressDeadlineExceeded condition decides only when it is about this rollout: a rollback to
an existing ReplicaSet inherits the failed rollout's condition, which the controller keeps until
it sees progress.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from mlgitops.deploy import FIELD_MANAGER
from mlgitops.deploy.kube import Kube, Manifest
from mlgitops.deploy.lock import parse_time
from mlgitops.release import CONTAINER_NAME

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
# Waiting reasons that do not heal by themselves within a rollout.
FATAL_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}
CRASH_LOOP = "CrashLoopBackOff"
DEFAULT_CRASHLOOP_RESTARTS = 3
# How the deployment controller names the ReplicaSet a Progressing condition is about.
_NAMED_REPLICASET = re.compile(r'ReplicaSet "([^"]+)"')


class RolloutFailure(Exception):  # noqa: N818 - an internal signal, not a user error
    """The rollout cannot complete; `reason` is a short machine-readable cause."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Assessment:
    done: bool
    message: str
    failure: RolloutFailure | None = None
    new_replicaset: Manifest | None = None
    pods: list[Manifest] = field(default_factory=list)


def _owned_by(obj: Manifest, owner: Manifest) -> bool:
    uid = owner.get("metadata", {}).get("uid")
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return bool(uid) and any(ref.get("uid") == uid for ref in refs)


def _template_without_hash(template: Manifest) -> Manifest:
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    meta["labels"] = labels
    return {**template, "metadata": meta}


def new_replicaset(deployment: Manifest, replicasets: list[Manifest]) -> Manifest | None:
    """The ReplicaSet of the Deployment's current template.

    The controller stamps the same revision on the Deployment and its new ReplicaSet; when that
    is not there yet, fall back to comparing pod templates as the controller does.
    """
    owned = [rs for rs in replicasets if _owned_by(rs, deployment)]
    revision = (deployment["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
    if revision:
        for rs in owned:
            if (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == revision:
                return rs
    template = deployment.get("spec", {}).get("template") or {}
    for rs in owned:
        if _template_without_hash(rs.get("spec", {}).get("template") or {}) == template:
            return rs
    return None


def pods_of(replicaset: Manifest, pods: list[Manifest]) -> list[Manifest]:
    return [
        p
        for p in pods
        if _owned_by(p, replicaset) and not p.get("metadata", {}).get("deletionTimestamp")
    ]


def pod_failure(pod: Manifest, crashloop_restarts: int) -> RolloutFailure | None:
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        detail = f"pod {name} container {cs.get('name')}: {reason}"
        if waiting.get("message"):
            detail += f" ({waiting['message']})"
        if reason in FATAL_WAITING:
            return RolloutFailure(reason, detail)
        if reason == CRASH_LOOP and int(cs.get("restartCount") or 0) >= crashloop_restarts:
            return RolloutFailure(reason, f"{detail}, {cs.get('restartCount')} restarts")
    return None


def _condition(deployment: Manifest, type_: str) -> Manifest:
    for cond in deployment.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return {}


def apply_time(obj: Manifest, manager: str = FIELD_MANAGER) -> datetime | None:
    """When `manager` last applied `obj`, by the server's clock (its managedFields entry)."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            return parse_time(entry.get("time"))
    return None


def stale_condition(
    condition: Manifest, replicaset: Manifest | None, applied_at: datetime | None
) -> str:
    """Why `condition` is left over from an earlier rollout ("" when it is about this one)."""
    named = _NAMED_REPLICASET.search(str(condition.get("message", "")))
    current = (replicaset or {}).get("metadata", {}).get("name")
    if named and named.group(1) != current:
        return f"it names ReplicaSet {named.group(1)}, not the new {current or 'one'}"
    changed = parse_time(condition.get("lastUpdateTime") or condition.get("lastTransitionTime"))
    # Condition times have whole seconds: only a strictly earlier second is before the apply.
    if (
        applied_at is not None
        and changed is not None
        and changed < applied_at.replace(microsecond=0)
    ):
        return "it is older than this rollout's apply"
    return ""


def assess(
    deployment: Manifest,
    replicasets: list[Manifest],
    pods: list[Manifest],
    *,
    crashloop_restarts: int = DEFAULT_CRASHLOOP_RESTARTS,
    applied_at: datetime | None = None,
) -> Assessment:
    meta, spec = deployment["metadata"], deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta["name"]
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return Assessment(False, f"waiting for the controller to observe {name}")
    rs = new_replicaset(deployment, replicasets)
    rs_pods = pods_of(rs, pods) if rs is not None else []
    for pod in rs_pods:
        failure = pod_failure(pod, crashloop_restarts)
        if failure is not None:
            return Assessment(False, failure.message, failure, rs, rs_pods)
    progressing = _condition(deployment, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded" and not stale_condition(
        progressing, rs, applied_at
    ):
        failure = RolloutFailure(
            "ProgressDeadlineExceeded",
            f"{name} exceeded its progress deadline ({spec.get('progressDeadlineSeconds')} s): "
            + str(progressing.get("message", "")),
        )
        return Assessment(False, failure.message, failure, rs, rs_pods)
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < desired:
        return Assessment(False, f"{updated} of {desired} new replicas updated", None, rs, rs_pods)
    if total > updated:
        return Assessment(False, f"{total - updated} old replicas pending termination", None, rs)
    if available < updated:
        return Assessment(False, f"{available} of {updated} updated replicas available", None, rs)
    if rs is None:
        return Assessment(False, f"waiting for the new ReplicaSet of {name}")
    return Assessment(
        True, f"{name}: {available} of {desired} replicas available", None, rs, rs_pods
    )


def expected_pod_mismatches(
    pods: list[Manifest], annotations: dict[str, str], image: str
) -> list[str]:
    """Why these pods do not run the expected model (empty when they all do)."""
    if not pods:
        return ["no running pods in the new ReplicaSet"]
    problems = []
    for pod in pods:
        name = pod["metadata"]["name"]
        have = pod["metadata"].get("annotations") or {}
        for key, want in annotations.items():
            if have.get(key) != want:
                problems.append(f"pod {name}: {key}={have.get(key)!r}, expected {want!r}")
        containers = {c.get("name"): c for c in pod.get("spec", {}).get("containers") or []}
        got = (containers.get(CONTAINER_NAME) or {}).get("image")
        if got != image:
            problems.append(f"pod {name}: image {got!r}, expected {image!r}")
    return problems


class RolloutWatcher:
    """Polls the API server until `assess` says done or failed, or the timeout passes."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        *,
        crashloop_restarts: int = DEFAULT_CRASHLOOP_RESTARTS,
        applied_at: datetime | None = None,
        min_interval: float = 0.05,
        max_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self.crashloop_restarts = crashloop_restarts
        self.applied_at = applied_at
        self.min_interval, self.max_interval = min_interval, max_interval
        self.clock, self.sleep = clock, sleep
        self.log = log
        self.check = check  # called before every poll; raises to stop waiting (a lost lease)

    def snapshot(self) -> Assessment:
        deployment = self.kube.get("apps/v1", "Deployment", self.name, self.namespace)
        if deployment is None:
            raise RolloutFailure("NotFound", f"Deployment {self.name} disappeared")
        replicasets = self.kube.list("apps/v1", "ReplicaSet", self.namespace)
        selector = (deployment.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = self.kube.list("v1", "Pod", self.namespace, label_selector)
        return assess(
            deployment,
            replicasets,
            pods,
            crashloop_restarts=self.crashloop_restarts,
            applied_at=self.applied_at,
        )

    def wait(self, timeout: float) -> Assessment:
        deadline = self.clock() + timeout
        interval = self.min_interval
        last = ""
        while True:
            if self.check is not None:
                self.check()
            state = self.snapshot()
            if state.failure is not None:
                raise state.failure
            if state.done:
                return state
            if self.log is not None and state.message != last:
                self.log(f"  {state.message}")
                last = state.message
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise RolloutFailure(
                    "Timeout", f"rollout of {self.name} not complete after {timeout:g} s: {last}"
                )
            self.sleep(min(interval, remaining))
            # Fast first polls keep short rollouts short; backing off spares a real API server.
            interval = min(interval * 1.5, self.max_interval)
