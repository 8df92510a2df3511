"""Static registry of the API resources the fake server knows about."""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _r(
    group_version: str,
    plural: str,
    kind: str,
    short: str = "",
    *,
    cluster: bool = False,
    sub: str = "",
    in_all: bool = False,
) -> ResourceType:
    group, _, version = group_version.rpartition("/")
    return ResourceType(
        group,
        version,
        plural,
        kind,
        namespaced=not cluster,
        short_names=tuple(short.split()),
        subresources=tuple(sub.split()),
        categories=("all",) if in_all else (),
    )


RESOURCES: tuple[ResourceType, ...] = (
    _r("v1", "namespaces", "Namespace", "ns", cluster=True, sub="status"),
    _r("v1", "configmaps", "ConfigMap", "cm"),
    _r("v1", "services", "Service", "svc", sub="status", in_all=True),
    _r("v1", "serviceaccounts", "ServiceAccount", "sa"),
    _r("v1", "pods", "Pod", "po", sub="status", in_all=True),
    _r("v1", "secrets", "Secret"),
    _r("v1", "events", "Event", "ev"),
    _r("apps/v1", "deployments", "Deployment", "deploy", sub="status scale", in_all=True),
    _r("apps/v1", "replicasets", "ReplicaSet", "rs", sub="status scale", in_all=True),
    _r("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", "hpa",
       sub="status", in_all=True),
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", "pdb", sub="status"),
    _r("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", "netpol"),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _r("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _r("coordination.k8s.io/v1", "leases", "Lease"),
)  # fmt: skip

BY_GVR: dict[tuple[str, str, str], ResourceType] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}


def group_versions() -> dict[str, list[str]]:
    """Group name -> versions, in registration order ('' is the core group)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def resources_in(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def lookup(spec: str) -> ResourceType:
    """Resolve 'deployments', 'deploy', 'Deployment', 'apps/v1/deployments' or
    'deployments.apps' to a ResourceType (for test control methods)."""
    if spec.count("/") >= 1:
        gv, _, plural = spec.rpartition("/")
        group, _, version = gv.rpartition("/")
        found = BY_GVR.get((group, version, plural))
        if found:
            return found
    name, _, group = spec.partition(".")
    for r in RESOURCES:
        if group and r.group != group:
            continue
        if name in (r.plural, r.kind, r.singular) or name in r.short_names:
            return r
    raise KeyError(f"unknown resource {spec!r}")


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for r in RESOURCES:
        if r.group_version == api_version and r.kind == kind:
            return r
    return None
