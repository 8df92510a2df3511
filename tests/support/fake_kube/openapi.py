"""Discovery and OpenAPI documents generated from the resource registry.

The OpenAPI documents are deliberately thin: every kind is an object that
preserves unknown fields. What matters to kubectl is that each PATCH
operation carries `x-kubernetes-group-version-kind` and a `fieldValidation`
query parameter, so it relies on server-side validation instead of
validating client-side against a schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .resources import RESOURCES, VERBS, ResourceType, group_versions, resources_in

Obj = dict[str, Any]

SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_SUB_VERBS = ["get", "patch", "update"]
PATCH_MEDIA_TYPES = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
]


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_obj(group: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list() -> Obj:
    groups = [_group_obj(g, vs) for g, vs in group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> Obj | None:
    versions = group_versions().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_obj(group, versions)}


def api_resource_list(group: str, version: str) -> Obj | None:
    rtypes = resources_in(group, version)
    if not rtypes:
        return None
    resources: list[Obj] = []
    for r in rtypes:
        entry: Obj = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "storageVersionHash": hashlib.sha256(r.plural.encode()).hexdigest()[:12],
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        resources.append(entry)
        for sub in r.subresources:
            sub_entry: Obj = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": _SUB_VERBS,
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            resources.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


# ------------------------------------------------------------------ OpenAPI


def _schema_name(r: ResourceType) -> str:
    group = r.group.split(".")[0] if r.group else "core"
    return f"io.k8s.api.{group}.{r.version}.{r.kind}"


def _gvk(r: ResourceType) -> Obj:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _kind_schema(r: ResourceType, ref_prefix: str) -> Obj:
    return {
        "type": "object",
        "description": f"{r.kind} (schema elided by the fake API server)",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": f"{ref_prefix}ObjectMeta"},
        },
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": [_gvk(r)],
    }


_OBJECT_META = {
    "type": "object",
    "description": "ObjectMeta (schema elided by the fake API server)",
    "x-kubernetes-preserve-unknown-fields": True,
}


def _query(name: str, v3: bool) -> Obj:
    if v3:
        return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    return {"name": name, "in": "query", "type": "string", "uniqueItems": True}


def _path_param(name: str, v3: bool) -> Obj:
    if v3:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    return {"name": name, "in": "path", "required": True, "type": "string"}


def _operations(r: ResourceType, v3: bool, ref_prefix: str) -> dict[str, Obj]:
    """Path -> path item for the collection and the item endpoint of r."""
    base = "/apis/" + r.group_version if r.group else "/api/v1"
    coll = f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
    ref = {"$ref": f"{ref_prefix}{_schema_name(r)}"}
    # Operation ids like the real ones: patchRbacAuthorizationV1NamespacedRole.
    words = re.split(r"[./]", r.group_version.removesuffix(f".k8s.io/{r.version}"))
    if r.group.endswith(".k8s.io"):
        words.append(r.version)
    camel = "".join(w.capitalize() for w in (words if r.group else ["core", r.version]))
    scope = "Namespaced" if r.namespaced else ""

    def op(action: str, verb: str, params: list[str], body: str = "") -> Obj:
        o: Obj = {
            "operationId": f"{verb}{camel}{scope}{r.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": _gvk(r),
            "parameters": [_query(p, v3) for p in params],
            "responses": {"200": _response(ref, v3)},
        }
        if body:
            if v3:
                media = PATCH_MEDIA_TYPES if body == "patch" else ["application/json"]
                o["requestBody"] = {"content": {m: {"schema": ref} for m in media}}
            else:
                o["parameters"].append(
                    {"name": "body", "in": "body", "required": True, "schema": ref}
                )
        return o

    writes = ["dryRun", "fieldManager", "fieldValidation"]
    common = [_path_param("namespace", v3)] if r.namespaced else []
    return {
        coll: {
            "get": op(
                "list",
                "list",
                ["labelSelector", "fieldSelector", "watch", "resourceVersion", "timeoutSeconds"],
            ),
            "post": op("post", "create", writes, body="object"),
            "parameters": common,
        },
        f"{coll}/{{name}}": {
            "get": op("get", "read", []),
            "put": op("put", "replace", writes, body="object"),
            "patch": op("patch", "patch", [*writes, "force"], body="patch"),
            "delete": op("delete", "delete", ["dryRun", "propagationPolicy"]),
            "parameters": [_path_param("name", v3), *common],
        },
    }


def _response(ref: Obj, v3: bool) -> Obj:
    if v3:
        return {"description": "OK", "content": {"application/json": {"schema": ref}}}
    return {"description": "OK", "schema": ref}


def openapi_v2() -> Obj:
    paths: Obj = {}
    definitions: Obj = {"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": _OBJECT_META}
    prefix = "#/definitions/"
    for r in RESOURCES:
        paths.update(_operations(r, False, prefix))
        definitions[_schema_name(r)] = _kind_schema(
            r, prefix + "io.k8s.apimachinery.pkg.apis.meta.v1."
        )
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "definitions": definitions,
    }


def openapi_v3_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_doc(group: str, version: str) -> Obj | None:
    rtypes = resources_in(group, version)
    if not rtypes:
        return None
    prefix = "#/components/schemas/"
    paths: Obj = {}
    schemas: Obj = {"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": _OBJECT_META}
    for r in rtypes:
        paths.update(_operations(r, True, prefix))
        schemas[_schema_name(r)] = _kind_schema(r, prefix + "io.k8s.apimachinery.pkg.apis.meta.v1.")
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v3_root() -> Obj:
    paths = {}
    for group, versions in group_versions().items():
        for version in versions:
            doc = json.dumps(openapi_v3_doc(group, version), sort_keys=True)
            digest = hashlib.sha512(doc.encode()).hexdigest()[:64].upper()
            path = openapi_v3_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
