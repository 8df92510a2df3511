"""Bearer-token authentication and RBAC authorization, as the API server does them, for the
Roles and RoleBindings stored in the fake (ClusterRoles are not modelled).

Off unless `FakeKubeServer.enable_rbac()` is called; then every request needs a known token:
- the admin token of the default kubeconfig ("fake-token") is in group `system:masters`, which
  bypasses authorization, as on a real cluster;
- `service_account_token(namespace, name)` mints a token for that ServiceAccount (user
  `system:serviceaccount:<ns>:<name>`, groups `system:serviceaccounts`,
  `system:serviceaccounts:<ns>`, `system:authenticated`); it authenticates only while the
  ServiceAccount exists.

Authorization follows the RBAC authorizer: a request is allowed when a RoleBinding in its
namespace binds the user (ServiceAccount, User or Group subject) to a Role with a rule matching
the API group, the resource (or `resource/subresource`), the verb and, when the rule lists
`resourceNames`, the object's name. A create by POST carries no name, so a rule with
resourceNames never allows it; a create through server-side apply (a PATCH that creates) or a
list/watch narrowed by `fieldSelector=metadata.name=<name>` carries one. Non-resource paths
(discovery, OpenAPI, /version) are open to every authenticated user (system:discovery).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .api import ApiError
from .resources import ResourceType, lookup
from .store import Obj, Store

ADMIN_TOKEN = "fake-token"
MASTERS = "system:masters"


@dataclass(frozen=True)
class Subject:
    user: str
    groups: tuple[str, ...]
    # The ServiceAccount behind a token, which must still exist: (namespace, name).
    service_account: tuple[str, str] | None = None


@dataclass(frozen=True)
class Attributes:
    """What the authorizer decides on, as `authorizer.AttributesRecord` in the API server."""

    verb: str
    rtype: ResourceType
    namespace: str
    name: str
    subresource: str = ""

    @property
    def resource(self) -> str:
        return f"{self.rtype.plural}/{self.subresource}" if self.subresource else self.rtype.plural


class Authorizer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.tokens: dict[str, Subject] = {ADMIN_TOKEN: Subject("admin", (MASTERS,))}
        self.enabled = False

    def service_account_token(self, namespace: str, name: str) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = Subject(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
             "system:authenticated"),
            (namespace, name),
        )  # fmt: skip
        return token

    def authenticate(self, authorization: str | None) -> Subject:
        scheme, _, token = (authorization or "").partition(" ")
        subject = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if subject is not None and subject.service_account is not None:
            namespace, name = subject.service_account
            if self.store.get(lookup("serviceaccounts"), namespace, name) is None:
                subject = None
        if subject is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return subject

    def authorize(self, subject: Subject, attributes: Attributes) -> None:
        """Returns when allowed; raises the API server's 403 otherwise."""
        if MASTERS in subject.groups or self._allowed(subject, attributes):
            return
        raise forbidden(subject, attributes)

    def _allowed(self, subject: Subject, attributes: Attributes) -> bool:
        if not attributes.rtype.namespaced or not attributes.namespace:
            return False  # cluster-scoped or all-namespace requests need ClusterRoles
        bindings, _ = self.store.list(lookup("rolebindings"), attributes.namespace, _everything)
        for binding in bindings:
            if not any(_binds(s, subject, attributes.namespace) for s in binding["subjects"]):
                continue
            ref = binding.get("roleRef") or {}
            if ref.get("kind") != "Role":
                continue
            role = self.store.get(lookup("roles"), attributes.namespace, ref.get("name", ""))
            if role and any(_matches(rule, attributes) for rule in role.get("rules") or []):
                return True
        return False


def _everything(_obj: Obj) -> bool:
    return True


def _binds(subject_ref: Obj, subject: Subject, namespace: str) -> bool:
    kind, name = subject_ref.get("kind"), subject_ref.get("name")
    if kind == "ServiceAccount":
        ns = subject_ref.get("namespace") or namespace
        return subject.user == f"system:serviceaccount:{ns}:{name}"
    if kind == "User":
        return subject.user == name
    if kind == "Group":
        return name in subject.groups
    return False


def _matches(rule: Obj, attributes: Attributes) -> bool:
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    verbs = rule.get("verbs") or []
    names = rule.get("resourceNames") or []
    return (
        ("*" in groups or attributes.rtype.group in groups)
        and ("*" in resources or attributes.resource in resources)
        and ("*" in verbs or attributes.verb in verbs)
        and (not names or (bool(attributes.name) and attributes.name in names))
    )


def forbidden(subject: Subject, attributes: Attributes) -> ApiError:
    rtype = attributes.rtype
    qualified = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    named = f' "{attributes.name}"' if attributes.name else ""
    where = f' in the namespace "{attributes.namespace}"' if attributes.namespace else ""
    message = (
        f'{qualified}{named} is forbidden: User "{subject.user}" cannot {attributes.verb} '
        f'resource "{attributes.resource}" in API group "{rtype.group}"{where}'
    )
    details = {"group": rtype.group, "kind": rtype.plural}
    if attributes.name:
        details["name"] = attributes.name
    return ApiError(403, "Forbidden", message, details)
