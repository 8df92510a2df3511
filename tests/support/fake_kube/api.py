"""Request semantics: create/update/patch/apply/delete on top of the Store."""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import patching, protobuf
from .resources import ResourceType, lookup
from .store import Obj, Store

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

PATCH_TYPES = {
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
}


# Top-level fields per kind (besides apiVersion/kind/metadata), for the shallow
# `fieldValidation=Strict` check that kubectl requests.
_EVENT_FIELDS = (
    "involvedObject reason message source firstTimestamp lastTimestamp count type eventTime "
    "series action related reportingComponent reportingInstance"
)
TOP_LEVEL_FIELDS: dict[str, set[str]] = {
    "ConfigMap": {"data", "binaryData", "immutable"},
    "Secret": {"data", "stringData", "type", "immutable"},
    "ServiceAccount": {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    "Event": set(_EVENT_FIELDS.split()),
    "Role": {"rules"},
    "RoleBinding": {"subjects", "roleRef"},
}
META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
}  # fmt: skip


class ApiError(Exception):
    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> Obj:
    obj: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        obj["details"] = details
    return obj


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(rtype)} "{name}" not found',
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def conflict(rtype: ResourceType, name: str, message: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(rtype)} "{name}": {message}',
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def invalid(rtype: ResourceType, name: str, problems: list[str]) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{rtype.kind}{"." + rtype.group if rtype.group else ""} "{name}" is invalid: '
        + ", ".join(problems),
        {"name": name, "group": rtype.group, "kind": rtype.kind},
    )


def _qualified(rtype: ResourceType) -> str:
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


@dataclass
class Request:
    """The parts of an HTTP request that the verbs care about."""

    rtype: ResourceType
    namespace: str
    name: str = ""
    subresource: str = ""
    query: dict[str, str] = field(default_factory=dict)
    user_agent: str = ""

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def manager(self) -> str:
        return self.query.get("fieldManager") or self.user_agent.split("/")[0] or "unknown"


def decode_body(raw: bytes, content_type: str) -> Any:
    try:
        if "protobuf" in content_type:
            return protobuf.decode(raw)
        if "yaml" in content_type:
            return yaml.safe_load(raw.decode() or "null")
        return json.loads(raw or b"null")
    except protobuf.ProtobufError as exc:
        raise ApiError(415, "UnsupportedMediaType", str(exc)) from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError(400, "BadRequest", f"error decoding request body: {exc}") from exc


class Api:
    def __init__(self, store: Store, *, require_namespace: bool = True) -> None:
        self.store = store
        self.require_namespace = require_namespace
        self.cluster_ip_counter = 10

    # ------------------------------------------------------------------ reads

    def get(self, req: Request) -> Obj:
        obj = self.store.get(req.rtype, req.namespace, req.name)
        if obj is None:
            raise not_found(req.rtype, req.name)
        if req.subresource == "scale":
            return to_scale(obj)
        return obj

    # ----------------------------------------------------------------- writes

    def create(self, req: Request, body: Any) -> Obj:
        obj = self._check_body(req, body, creating=True)
        with self.store.lock:
            name = obj["metadata"].get("name", "")
            if not name and obj["metadata"].get("generateName"):
                name = obj["metadata"]["generateName"] + _random_suffix()
                obj["metadata"]["name"] = name
            if self.store.get(req.rtype, req.namespace, name) is not None:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{_qualified(req.rtype)} "{name}" already exists',
                    {"name": name, "group": req.rtype.group, "kind": req.rtype.plural},
                )
            self._prepare(req, obj, None)
            obj["metadata"].pop("managedFields", None)
            patching.record_update(None, obj, req.manager, req.rtype.group_version)
            return self.store.commit(req.rtype, obj, req.dry_run)

    def update(self, req: Request, body: Any) -> Obj:
        if req.subresource == "scale":
            return self._write_scale(req, lambda _scale: body)
        obj = self._check_body(req, body)
        with self.store.lock:
            old = self.store.get(req.rtype, req.namespace, req.name)
            if old is None:
                raise not_found(req.rtype, req.name)
            rv = obj["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(
                    req.rtype,
                    req.name,
                    "the object has been modified; please apply your changes "
                    "to the latest version and try again",
                )
            return self._write(req, old, obj)

    def patch(self, req: Request, raw: bytes, content_type: str) -> Obj:
        ctype = content_type.split(";")[0].strip()
        if ctype not in PATCH_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format "
                f"- accepted media types include: {', '.join(sorted(PATCH_TYPES))}",
            )
        body = decode_body(raw, ctype)
        if req.subresource == "scale":
            return self._write_scale(req, lambda scale: _apply_patch(ctype, scale, body))
        if ctype == "application/apply-patch+yaml":
            return self._apply(req, body)
        with self.store.lock:
            old = self.store.get(req.rtype, req.namespace, req.name)
            if old is None:
                raise not_found(req.rtype, req.name)
            try:
                new = _apply_patch(ctype, old, body)
            except patching.PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
            if not isinstance(new, dict):
                raise ApiError(400, "BadRequest", "patch did not produce an object")
            new.setdefault("metadata", {})
            rv = new["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(req.rtype, req.name, "the object has been modified")
            return self._write(req, old, self._check_body(req, new))

    def _apply(self, req: Request, body: Any) -> Obj:
        if not req.query.get("fieldManager"):
            raise ApiError(
                400,
                "BadRequest",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
            )
        config = self._check_body(req, body, creating=True)
        force = req.query.get("force", "").lower() == "true"
        with self.store.lock:
            old = self.store.get(req.rtype, req.namespace, req.name)
            if req.subresource == "status":
                # Status ownership is not tracked: merge the applied status in.
                if old is None:
                    raise not_found(req.rtype, req.name)
                status = config.get("status") or {}
                new = {**old, "status": patching.apply_merge(old.get("status") or {}, status)}
                return self._write(req, old, new)
            try:
                merged = patching.apply(old, config, req.manager, force, req.rtype.group_version)
            except patching.ApplyConflictError as exc:
                causes = [
                    {
                        "type": "FieldManagerConflict",
                        "message": f'conflict with "{m}"',
                        "field": patching.render_path(p),
                    }
                    for m, p in exc.conflicts
                ]
                raise ApiError(
                    409,
                    "Conflict",
                    str(exc),
                    {
                        "name": req.name,
                        "group": req.rtype.group,
                        "kind": req.rtype.plural,
                        "causes": causes,
                    },
                ) from exc
            if old is not None:
                rv = config["metadata"].get("resourceVersion")
                if rv and rv != old["metadata"]["resourceVersion"]:
                    raise conflict(req.rtype, req.name, "the object has been modified")
                self._prepare(req, merged, old)
                return self.store.commit(req.rtype, merged, req.dry_run)
            self._prepare(req, merged, None)
            return self.store.commit(req.rtype, merged, req.dry_run)

    def _write(self, req: Request, old: Obj, new: Obj) -> Obj:
        """Common tail of update and (non-apply) patch. Caller holds the lock."""
        if req.subresource == "status":
            # Only status changes; everything else comes from the stored object.
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self.store.commit(req.rtype, merged, req.dry_run)
        self._prepare(req, new, old)
        # Ownership is the server's bookkeeping; clients cannot rewrite it here.
        new["metadata"]["managedFields"] = copy.deepcopy(old["metadata"].get("managedFields", []))
        patching.record_update(old, new, req.manager, req.rtype.group_version)
        return self.store.commit(req.rtype, new, req.dry_run)

    def _write_scale(self, req: Request, change: Any) -> Obj:
        with self.store.lock:
            old = self.store.get(req.rtype, req.namespace, req.name)
            if old is None:
                raise not_found(req.rtype, req.name)
            scale = change(to_scale(old))
            replicas = (scale or {}).get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(req.rtype, req.name, ["spec.replicas: Invalid value"])
            new = copy.deepcopy(old)
            new["spec"]["replicas"] = replicas
            patching.record_update(old, new, req.manager, req.rtype.group_version)
            return to_scale(self.store.commit(req.rtype, new, req.dry_run))

    def delete(self, req: Request, options: Obj | None = None) -> Obj:
        """Delete now; `options` is a DeleteOptions body (preconditions, dryRun...)."""
        options = options or {}
        dry_run = req.dry_run or "All" in (options.get("dryRun") or [])
        policy = req.query.get("propagationPolicy") or options.get("propagationPolicy")
        with self.store.lock:
            obj = self.store.get(req.rtype, req.namespace, req.name)
            if obj is None:
                raise not_found(req.rtype, req.name)
            meta = obj["metadata"]
            for field in ("uid", "resourceVersion"):
                wanted = (options.get("preconditions") or {}).get(field)
                if wanted and wanted != meta.get(field):
                    raise conflict(
                        req.rtype,
                        req.name,
                        f"Precondition failed: {field[0].upper() + field[1:]} in precondition: "
                        f"{wanted}, {field[0].upper() + field[1:]} in object meta: {meta[field]}",
                    )
            if dry_run:
                return obj
            deleted = self.store.delete(req.rtype, req.namespace, req.name)
            assert deleted is not None
            if req.rtype.kind == "Namespace":
                for rtype, item in self.store.all_objects():
                    if rtype.namespaced and item["metadata"].get("namespace") == req.name:
                        self.store.delete(rtype, req.name, item["metadata"]["name"])
            if policy != "Orphan":
                self.collect_garbage()
            return deleted

    def collect_garbage(self) -> None:
        """Delete, transitively, objects all of whose owners no longer exist."""
        with self.store.lock:
            while True:
                objects = self.store.all_objects()
                uids = {o["metadata"]["uid"] for _, o in objects}
                doomed = [
                    (rtype, o)
                    for rtype, o in objects
                    if (refs := o["metadata"].get("ownerReferences"))
                    and all(ref.get("uid") not in uids for ref in refs)
                ]
                if not doomed:
                    return
                for rtype, o in doomed:
                    meta = o["metadata"]
                    self.store.delete(rtype, meta.get("namespace", ""), meta["name"])

    # ------------------------------------------------------------- helpers

    def _check_body(self, req: Request, body: Any, creating: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON/YAML object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != req.rtype.kind and req.subresource != "scale":
            raise ApiError(
                400, "BadRequest", f"kind {kind} does not match the endpoint ({req.rtype.kind})"
            )
        if api_version and api_version != req.rtype.group_version:
            raise ApiError(
                400,
                "BadRequest",
                f"apiVersion {api_version} does not match the endpoint ({req.rtype.group_version})",
            )
        if req.query.get("fieldValidation") == "Strict" and req.subresource != "scale":
            allowed = TOP_LEVEL_FIELDS.get(req.rtype.kind, {"spec", "status"})
            unknown = sorted(
                k for k in obj if k not in {"apiVersion", "kind", "metadata", *allowed}
            )
            unknown += sorted(f"metadata.{k}" for k in meta if k not in META_FIELDS)
            if unknown:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{req.rtype.kind} in version "{req.rtype.version}" cannot be handled as a '
                    f"{req.rtype.kind}: strict decoding error: "
                    + ", ".join(f'unknown field "{k}"' for k in unknown),
                )
        if req.name and meta.get("name") and meta["name"] != req.name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        if req.name:
            meta["name"] = req.name
        body_ns = meta.get("namespace")
        if req.rtype.namespaced:
            if body_ns and body_ns != req.namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request",
                )
            meta["namespace"] = req.namespace
        else:
            meta.pop("namespace", None)
        if not creating and not meta.get("name"):
            raise invalid(req.rtype, "", ["metadata.name: Required value"])
        return obj

    def _prepare(self, req: Request, obj: Obj, old: Obj | None) -> None:
        """Defaults, validation and status handling for a main-resource write."""
        rtype, meta = req.rtype, obj["metadata"]
        name = meta.get("name", "")
        problems = []
        if not name:
            problems.append("metadata.name: Required value: name or generateName is required")
        elif not NAME_RE.match(name) or len(name) > 253:
            problems.append(
                f'metadata.name: Invalid value: "{name}": must be a lowercase RFC 1123 subdomain'
            )
        if (
            rtype.namespaced
            and self.require_namespace
            and old is None
            and self.store.get(lookup("namespaces"), "", req.namespace) is None
        ):
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{req.namespace}" not found',
                {"name": req.namespace, "kind": "namespaces"},
            )
        if rtype.has_status:
            # Writes to the main resource never change status.
            obj.pop("status", None)
            if old is not None and "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
        defaults = _DEFAULTERS.get(rtype.kind)
        if defaults:
            defaults(self, obj, old)
        validate = _VALIDATORS.get(rtype.kind)
        if validate:
            problems += validate(obj)
        if problems:
            raise invalid(rtype, name, problems)


def _apply_patch(ctype: str, target: Obj, body: Any) -> Any:
    if ctype == "application/json-patch+json":
        return patching.json_patch(target, body)
    if ctype == "application/merge-patch+json":
        return patching.json_merge_patch(target, body)
    return patching.strategic_merge_patch(target, body)


def to_scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


def _random_suffix() -> str:
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


# ----------------------------------------------------- per-kind behaviour


def _default_deployment(_api: Api, obj: Obj, _old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
    )


def _default_service(api: Api, obj: Obj, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if "clusterIP" not in spec and spec["type"] != "ExternalName":
        if old and old.get("spec", {}).get("clusterIP"):
            spec["clusterIP"] = old["spec"]["clusterIP"]
        else:
            api.cluster_ip_counter += 1
            n = api.cluster_ip_counter
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
    if old is None:
        obj["status"] = {"loadBalancer": {}}
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _default_namespace(_api: Api, obj: Obj, _old: Obj | None) -> None:
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
        "name"
    ]
    obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    obj["status"] = {"phase": "Active"}


def _validate_deployment(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    problems = []
    selector = (spec.get("selector") or {}).get("matchLabels")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector and not (spec.get("selector") or {}).get("matchExpressions"):
        problems.append("spec.selector: Required value")
    elif selector and any(labels.get(k) != v for k, v in selector.items()):
        problems.append(
            "spec.template.metadata.labels: Invalid value: "
            f"{json.dumps(labels)}: `selector` does not match template `labels`"
        )
    if not isinstance(spec.get("replicas", 1), int) or spec.get("replicas", 1) < 0:
        problems.append("spec.replicas: Invalid value: must be greater than or equal to 0")
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        problems.append("spec.template.spec.containers: Required value")
    for i, c in enumerate(containers):
        if not c.get("name"):
            problems.append(f"spec.template.spec.containers[{i}].name: Required value")
        if not c.get("image"):
            problems.append(f"spec.template.spec.containers[{i}].image: Required value")
    return problems


def _default_secret(_api: Api, obj: Obj, _old: Obj | None) -> None:
    # Like the real API server, stringData is folded into data and dropped.
    for key, value in (obj.pop("stringData", None) or {}).items():
        obj.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")


_DEFAULTERS = {
    "Secret": _default_secret,
    "Deployment": _default_deployment,
    "Service": _default_service,
    "Namespace": _default_namespace,
}
_VALIDATORS = {"Deployment": _validate_deployment}
