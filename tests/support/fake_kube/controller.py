"""A tiny stand-in for kube-controller-manager (deployments, replicasets) and the
kubelet (pod status), running as one background thread over the Store."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import string
import threading
import time
import traceback
from collections.abc import Callable

from .registry_view import RegistryView
from .resources import lookup
from .store import Obj, Store, now_rfc3339

ImagePredicate = Callable[[str], bool]

DEPLOYMENTS = lookup("deployments")
REPLICASETS = lookup("replicasets")
PODS = lookup("pods")
SECRETS = lookup("secrets")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")
_COMPLETE = "NewReplicaSetAvailable"
_TIMED_OUT = "ProgressDeadlineExceeded"


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the real controller's "safe" alphabet
    return "".join(alphabet[b % len(alphabet)] for b in digest[:10])


def _suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def _owned_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Controller:
    """Reconciles on every store change and at least every `interval` seconds.

    ready_delay: seconds (wall clock) before a new pod becomes Ready.
    time_scale: multiplies durations taken from specs (progressDeadlineSeconds),
        so a 600 s deadline becomes 6 s at the default 0.01.
    registry: the registry as the nodes see it (tag -> digest), which gives pods their imageID.
    scale_down_delay: seconds before the ReplicaSet controller removes the pods of a scaled-down
        ReplicaSet. The real controllers are separate loops fed by watches, so the Deployment
        controller writes a status (observedGeneration caught up) before it sees the old pods
        go; on a real cluster that takes tens of milliseconds to a second.
    """

    def __init__(
        self,
        store: Store,
        *,
        ready_delay: float = 0.2,
        time_scale: float = 0.01,
        interval: float = 0.05,
        scale_down_delay: float = 0.0,
        errors: list[str] | None = None,
        registry: RegistryView | None = None,
    ) -> None:
        self.store = store
        self.registry = registry or RegistryView()  # what the kubelet pulls
        self.ready_delay = ready_delay
        self.time_scale = time_scale
        self.interval = interval
        self.scale_down_delay = scale_down_delay
        self.failing: list[tuple[ImagePredicate, str]] = []  # (predicate, waiting reason)
        self.errors: list[str] = errors if errors is not None else []
        self._pod_seen: dict[str, float] = {}  # pod uid -> monotonic first-seen time
        # deployment uid -> monotonic time of the last progress (the real controller compares
        # the Progressing condition's lastUpdateTime with the deadline; this one is time-scaled)
        self._progress: dict[str, float] = {}
        self._created: set[str] = set()  # deployment uids whose new ReplicaSet was just created
        self._scale_down_seen: dict[str, float] = {}  # rs uid -> when its excess pods were seen
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-kube-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.store.changed:
            self.store.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        with self.store.lock:
            self.registry.clear()
            self.failing.clear()
            self._pod_seen.clear()
            self._progress.clear()
            self._created.clear()
            self._scale_down_seen.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:  # keep the thread alive; surface the bug to tests
                trace = traceback.format_exc()
                if not self.errors or self.errors[-1] != trace:
                    self.errors.append(trace)
            with self.store.changed:
                if not self._stop.is_set():
                    self.store.changed.wait(self.interval)

    # ------------------------------------------------------------ reconcile

    def reconcile(self) -> None:
        with self.store.lock:
            objects = self.store.all_objects()
            by_type: dict[str, list[Obj]] = {}
            for rtype, obj in objects:
                by_type.setdefault(rtype.plural, []).append(obj)
            for deployment in by_type.get("deployments", []):
                self._sync_deployment(deployment, by_type.get("replicasets", []))
            # Like the real deployment controller, the status is computed from the ReplicaSets'
            # statuses as they are now, before the ReplicaSet controller acts on this pass's
            # scaling: the Deployment sees the result one pass later.
            deployments, _ = self.store.list(DEPLOYMENTS)
            replicasets, _ = self.store.list(REPLICASETS)
            for deployment in deployments:
                owned = [rs for rs in replicasets if _owned_by(rs, deployment)]
                self._deployment_status(deployment, owned)
            pods, _ = self.store.list(PODS)
            for rs in replicasets:
                self._sync_replicaset(rs, [p for p in pods if _owned_by(p, rs)])
            pods, _ = self.store.list(PODS)
            for pod in pods:
                self._sync_pod(pod)
            live = {p["metadata"]["uid"] for p in pods}
            self._pod_seen = {k: v for k, v in self._pod_seen.items() if k in live}

    def _sync_deployment(self, deployment: Obj, all_rs: list[Obj]) -> None:
        spec = deployment.setdefault("spec", {})
        if spec.get("paused"):
            return
        ns, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        owned = [rs for rs in all_rs if _owned_by(rs, deployment)]
        template = copy.deepcopy(spec.get("template") or {})
        h = template_hash(template)
        new_rs = next((rs for rs in owned if _labels(rs).get(HASH_LABEL) == h), None)
        olds = [rs for rs in owned if rs is not new_rs]
        desired = spec.get("replicas", 1)
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        old_pods_left = any(rs.get("status", {}).get("replicas", 0) for rs in olds)
        new_replicas = 0 if recreate and old_pods_left else desired

        if new_rs is None:
            revision = 1 + max((_revision(rs) for rs in owned), default=0)
            template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[HASH_LABEL] = h
            new_rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{h}",
                    "namespace": ns,
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {REVISION: str(revision)},
                    "ownerReferences": [_owner_ref(deployment)],
                },
                "spec": {"replicas": new_replicas, "selector": selector, "template": template},
            }
            new_rs = self.store.commit(REPLICASETS, new_rs)
            self._created.add(deployment["metadata"]["uid"])
        else:
            changed = new_rs["spec"].get("replicas") != new_replicas
            new_rs["spec"]["replicas"] = new_replicas
            newest = max((_revision(rs) for rs in olds), default=0)
            if _revision(new_rs) <= newest:  # a rollback to an older template
                new_rs["metadata"].setdefault("annotations", {})[REVISION] = str(newest + 1)
                changed = True
            if changed:
                new_rs = self.store.commit(REPLICASETS, new_rs)

        # Old ReplicaSets go to zero once the new one is fully available
        # (a 100%-surge rolling update), or immediately for Recreate.
        new_status = new_rs.get("status", {})
        new_done = (
            new_status.get("availableReplicas", 0) >= desired
            and new_status.get("observedGeneration") == new_rs["metadata"]["generation"]
        )
        for rs in olds:
            rs.setdefault("spec", {})
            if (recreate or new_done) and rs["spec"].get("replicas"):
                rs["spec"]["replicas"] = 0
                self.store.commit(REPLICASETS, rs)

        revision = str(_revision(new_rs))
        annotations = deployment["metadata"].setdefault("annotations", {})
        if annotations.get(REVISION) != revision:
            annotations[REVISION] = revision
            self.store.commit(DEPLOYMENTS, deployment)

        limit = spec.get("revisionHistoryLimit", 10)
        idle = sorted((rs for rs in olds if not rs["spec"].get("replicas")), key=_revision)
        for rs in idle[: max(0, len(idle) - limit)]:
            if not rs.get("status", {}).get("replicas"):
                self.store.delete(REPLICASETS, ns, rs["metadata"]["name"])

    def _sync_replicaset(self, rs: Obj, pods: list[Obj]) -> None:
        ns, name = rs["metadata"]["namespace"], rs["metadata"]["name"]
        spec = rs.setdefault("spec", {})
        want, template = spec.get("replicas", 1), spec.get("template") or {}
        uid = rs["metadata"]["uid"]
        if len(pods) > want:
            seen = self._scale_down_seen.setdefault(uid, time.monotonic())
            if time.monotonic() - seen >= self.scale_down_delay:
                for pod in pods[want:]:
                    self.store.delete(PODS, ns, pod["metadata"]["name"])
                pods = pods[:want]
                del self._scale_down_seen[uid]
        else:
            self._scale_down_seen.pop(uid, None)
        for _ in range(want - len(pods)):
            tmeta = template.get("metadata") or {}
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{_suffix()}",
                    "generateName": f"{name}-",
                    "namespace": ns,
                    "labels": dict(tmeta.get("labels") or {}),
                    "annotations": dict(tmeta.get("annotations") or {}),
                    "ownerReferences": [_owner_ref(rs)],
                },
                "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": "fake-node"},
                "status": {"phase": "Pending"},
            }
            pods.append(self.store.commit(PODS, pod))
        ready = sum(1 for p in pods if self._pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"],
        }
        if rs.get("status") != status:
            rs["status"] = status
            self.store.commit(REPLICASETS, rs)

    # ---------------------------------------------------------------- pods

    def _pod_age(self, pod: Obj) -> float:
        uid = pod["metadata"]["uid"]
        return time.monotonic() - self._pod_seen.setdefault(uid, time.monotonic())

    def _failure(self, image: str) -> str | None:
        """The waiting reason injected for this image, if any."""
        return next((reason for pred, reason in self.failing if pred(image)), None)

    def _pod_ready(self, pod: Obj) -> bool:
        containers = pod.get("spec", {}).get("containers") or []
        return (
            self._pod_age(pod) >= self.ready_delay
            and not self._missing_secrets(pod)
            and not any(
                self._failure(c.get("image", "")) or not self._pullable(pod, c) for c in containers
            )
        )

    def _missing_secrets(self, pod: Obj) -> list[str]:
        """Secrets the pod's volumes need (not `optional: true`) that its namespace lacks: the
        kubelet cannot mount them, and the pod stays ContainerCreating until they exist."""
        namespace = pod["metadata"].get("namespace", "")
        missing = []
        for volume in pod.get("spec", {}).get("volumes") or []:
            source = volume.get("secret")
            if not source or source.get("optional"):
                continue
            name = source.get("secretName", "")
            if self.store.get(SECRETS, namespace, name) is None:
                missing.append(name)
        return missing

    def _pullable(self, pod: Obj, container: Obj) -> bool:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") == container.get("name") and cs.get("imageID"):
                return True
        return self.registry.digest_of(container.get("image", "")) is not None

    def _sync_pod(self, pod: Obj) -> None:
        age = self._pod_age(pod)
        missing_secrets = self._missing_secrets(pod)
        started = age >= self.ready_delay and not missing_secrets
        restart_every = max(self.ready_delay, 0.1)
        pulled = True  # images that cannot be pulled keep the pod Pending
        statuses = []
        # A container keeps the bytes it pulled, whatever happens to the tag afterwards.
        had = {
            (cs.get("name"), cs.get("image")): cs.get("imageID", "")
            for cs in (pod.get("status") or {}).get("containerStatuses") or []
        }
        for c in pod.get("spec", {}).get("containers") or []:
            image = c.get("image", "")
            st: Obj = {
                "name": c.get("name", ""),
                "image": image,
                "imageID": "",
                "restartCount": 0,
                "ready": False,
                "started": False,
            }
            failure = self._failure(image)
            image_id = had.get((st["name"], image)) or ""
            if started and not failure and not image_id:
                digest = self.registry.digest_of(image)
                if digest is None:
                    failure = "ErrImagePull"
                else:
                    image_id = self.registry.image_id(image, digest)
            if not started:
                st["state"] = {"waiting": {"reason": "ContainerCreating"}}
                if missing_secrets:  # the kubelet's FailedMount event, in short
                    st["state"]["waiting"]["message"] = (
                        f'MountVolume.SetUp failed: secret "{missing_secrets[0]}" not found'
                    )
            elif failure in PULL_FAILURES:
                message = f'Back-off pulling image "{image}"'
                if not self._failure(image):  # the registry view has no such manifest
                    message = f'failed to pull "{image}": manifest unknown'
                st["state"] = {"waiting": {"reason": failure, "message": message}}
                pulled = False
            elif failure:
                st["restartCount"] = 1 + int((age - self.ready_delay) / restart_every)
                st["state"] = {
                    "waiting": {
                        "reason": failure,
                        "message": f"back-off restarting failed container {st['name']}",
                    }
                }
                st["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
            else:
                st.update(ready=True, started=True, imageID=image_id)
                st["state"] = {"running": {"startedAt": pod["metadata"]["creationTimestamp"]}}
            statuses.append(st)
        ready = started and all(s["ready"] for s in statuses)
        old = pod.get("status") or {}
        status: Obj = {
            "phase": "Running" if started and pulled else "Pending",
            "conditions": _pod_conditions(old, started, ready),
            "containerStatuses": statuses,
            "hostIP": "10.0.0.1",
            "startTime": pod["metadata"]["creationTimestamp"],
        }
        if started:
            status["podIP"] = old.get("podIP") or f"10.244.0.{1 + secrets.randbelow(250)}"
        if old != status:
            pod["status"] = status
            self.store.commit(PODS, pod)

    # --------------------------------------------------------- deployments

    def _deployment_status(self, deployment: Obj, owned: list[Obj]) -> None:
        spec, meta = deployment.setdefault("spec", {}), deployment["metadata"]
        desired = spec.get("replicas", 1)
        h = template_hash(spec.get("template") or {})
        new_rs = next((rs for rs in owned if _labels(rs).get(HASH_LABEL) == h), None)
        counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0}
        for rs in owned:
            for k in counts:
                counts[k] += rs.get("status", {}).get(k, 0)
        available = counts["availableReplicas"]
        old_status = deployment.get("status") or {}
        status: Obj = {
            "observedGeneration": meta["generation"],
            "replicas": counts["replicas"],
            "updatedReplicas": (new_rs or {}).get("status", {}).get("replicas", 0),
            "readyReplicas": counts["readyReplicas"],
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available),
        }
        conds = {c["type"]: c for c in old_status.get("conditions") or []}
        if available >= desired - _max_unavailable(spec, desired):
            _set_condition(
                conds, "Available", "True", "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )  # fmt: skip
        else:
            _set_condition(
                conds, "Available", "False", "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )  # fmt: skip
        self._progressing(deployment, new_rs, old_status, status, conds)
        status["conditions"] = [conds[t] for t in ("Available", "Progressing") if t in conds]
        status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")}
        if old_status != status:
            deployment["status"] = status
            self.store.commit(DEPLOYMENTS, deployment)

    def _progressing(
        self, deployment: Obj, new_rs: Obj | None, old: Obj, new: Obj, conds: dict[str, Obj]
    ) -> None:
        """The Progressing condition, by the rules of the real controller (sync.go, progress.go).

        A rollback to an existing ReplicaSet leaves the condition as it is, so a
        ProgressDeadlineExceeded naming the failed ReplicaSet stays until progress is seen.
        """
        spec, uid = deployment["spec"], deployment["metadata"]["uid"]
        now = time.monotonic()
        name = new_rs["metadata"]["name"] if new_rs else None
        what = f'ReplicaSet "{name}"' if name else f'Deployment "{deployment["metadata"]["name"]}"'
        current = conds.get("Progressing") or {}
        if uid in self._created:
            self._created.discard(uid)
            _set_condition(
                conds, "Progressing", "True", "NewReplicaSetCreated",
                f'Created new replica set "{name}"',
            )  # fmt: skip
            self._progress[uid] = now
        elif new_rs is not None and not current:
            _set_condition(
                conds,
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                f'Found new replica set "{name}"',
            )
            self._progress[uid] = now
        if spec.get("paused"):
            _set_condition(
                conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"
            )
            return
        if (conds.get("Progressing") or {}).get("reason") == "DeploymentPaused":
            _set_condition(
                conds, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed"
            )
            self._progress[uid] = now
        current = conds.get("Progressing") or {}
        desired = spec.get("replicas", 1)
        if new["replicas"] == new["updatedReplicas"] and current.get("reason") == _COMPLETE:
            return  # a finished rollout; scaling is not progress to estimate
        if new["updatedReplicas"] == new["replicas"] == new["availableReplicas"] == desired:
            _set_condition(
                conds, "Progressing", "True", _COMPLETE, f"{what} has successfully progressed."
            )
        elif _made_progress(old, new):
            _set_condition(
                conds, "Progressing", "True", "ReplicaSetUpdated", f"{what} is progressing.",
                refresh=True,
            )  # fmt: skip
            self._progress[uid] = now
        elif current.get("reason") == _TIMED_OUT or (
            current.get("reason") != _COMPLETE
            and current
            and now - self._progress.setdefault(uid, now)
            > spec.get("progressDeadlineSeconds", 600) * self.time_scale
        ):
            # Setting the same status and reason again keeps the old message and times.
            _set_condition(
                conds, "Progressing", "False", _TIMED_OUT, f"{what} has timed out progressing."
            )


def _labels(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _revision(rs: Obj) -> int:
    try:
        return int(rs["metadata"].get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _max_unavailable(spec: Obj, desired: int) -> int:
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        return desired
    value = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return int(desired * int(value[:-1]) / 100)
    return int(value)


def _made_progress(old: Obj, new: Obj) -> bool:
    """util.DeploymentProgressing: more updated, ready or available pods, or fewer old ones."""
    old_olds = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_olds = new["replicas"] - new["updatedReplicas"]
    return (
        new["updatedReplicas"] > old.get("updatedReplicas", 0)
        or new_olds < old_olds
        or new["readyReplicas"] > old.get("readyReplicas", 0)
        or new["availableReplicas"] > old.get("availableReplicas", 0)
    )


def _set_condition(
    conds: dict[str, Obj],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    refresh: bool = False,
) -> None:
    """util.SetDeploymentCondition: the same status and reason is no change (unless `refresh`,
    which the real controller does for ReplicaSetUpdated to move lastUpdateTime)."""
    old = conds.get(type_)
    if not refresh and old and (old.get("status"), old.get("reason")) == (status, reason):
        return
    now = now_rfc3339()
    transition = old["lastTransitionTime"] if old and old.get("status") == status else now
    conds[type_] = {
        "type": type_,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def _pod_conditions(old: Obj, started: bool, ready: bool) -> list[Obj]:
    old_conds = {c["type"]: c for c in old.get("conditions") or []}
    wanted = [
        ("PodScheduled", True, ""),
        ("Initialized", started, ""),
        ("ContainersReady", ready, "" if ready else "ContainersNotReady"),
        ("Ready", ready, "" if ready else "ContainersNotReady"),
    ]
    out = []
    for type_, ok, reason in wanted:
        status = "True" if ok else "False"
        prev = old_conds.get(type_)
        if prev and prev.get("status") == status:
            out.append(prev)
            continue
        cond = {"type": type_, "status": status, "lastTransitionTime": now_rfc3339()}
        if reason:
            cond["reason"] = reason
        out.append(cond)
    return out
