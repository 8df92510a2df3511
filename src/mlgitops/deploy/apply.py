"""Server-side apply of a rendered revision, and the dry-run diff.

Field manager `mlgitops`, with force: Git is the source of truth, so a field someone changed by
hand (`kubectl edit`, `kubectl set image`) is taken back on the next deploy instead of blocking
it with a conflict, which matters most during a rollback. Fields the manifests do not declare
(the replica count the autoscaler owns, defaults, status) are left to their owners.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterable
from typing import NoReturn

import yaml

from mlgitops.deploy.kube import Kube, KubeError, Manifest, ObjectRef
from mlgitops.errors import DeployError

# Server bookkeeping that changes on every write and says nothing about the desired state.
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


def bootstrap_hint(namespace: str, environment: str) -> str:
    return (
        f"namespace {namespace} does not exist; a cluster admin creates it and the deployer's "
        f"RBAC once with `kubectl apply --server-side -k k8s/bootstrap/{environment}`"
    )


def _raise_for(error: KubeError, ref: ObjectRef, environment: str, action: str) -> NoReturn:
    if error.missing_namespace and ref.namespace:
        raise DeployError(bootstrap_hint(ref.namespace, environment)) from None
    raise DeployError(f"{action} {ref} failed: {error}") from None


def validate_all(kube: Kube, objects: Iterable[Manifest], environment: str) -> None:
    """Dry-run every object first, so a rejected manifest stops the deploy before any write."""
    for obj in objects:
        try:
            kube.apply(obj, dry_run=True)
        except KubeError as error:
            _raise_for(error, ObjectRef.of(obj), environment, "validating")


def apply_all(
    kube: Kube,
    objects: Iterable[Manifest],
    environment: str,
    before_each: Callable[[ObjectRef], None] | None = None,
) -> list[Manifest]:
    """Apply in order; `before_each` may stop it before any write (the lease check)."""
    applied = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        if before_each is not None:
            before_each(ref)
        try:
            applied.append(kube.apply(obj))
        except KubeError as error:
            _raise_for(error, ref, environment, "applying")
    return applied


def comparable(obj: Manifest | None) -> Manifest | None:
    """`obj` without server bookkeeping and status, for a diff of intent."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    return out


def _dump(obj: Manifest | None) -> list[str]:
    if obj is None:
        return []
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines(keepends=True)


def object_diff(live: Manifest | None, desired: Manifest | None, label: str) -> str:
    before, after = _dump(comparable(live)), _dump(comparable(desired))
    return "".join(
        difflib.unified_diff(
            before,
            after,
            fromfile=f"live/{label}" if live is not None else "/dev/null",
            tofile=f"desired/{label}",
        )
    )


def dry_run_diff(kube: Kube, objects: Iterable[Manifest], environment: str) -> str:
    """What applying `objects` would change, as the server computes it; changes nothing."""
    chunks = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        try:
            live = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
            desired = kube.apply(obj, dry_run=True)
        except KubeError as error:
            _raise_for(error, ref, environment, "dry-run applying")
        label = f"{ref.namespace}/{ref.kind}/{ref.name}" if ref.namespace else str(ref)
        chunks.append(object_diff(live, desired, label))
    return "".join(chunks)
