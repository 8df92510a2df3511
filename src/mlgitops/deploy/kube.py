"""A thin, dict-in dict-out layer over the official client's DynamicClient.

Everything else in `mlgitops.deploy` talks to this class only, so the API server can be the
fake one of the tests or a real cluster, and errors arrive as `KubeError` with the HTTP status.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlgitops.deploy import FIELD_MANAGER
from mlgitops.errors import DeployError

# A Kubernetes object as the API serves it; every deploy module passes these around.
Manifest = dict[str, Any]

# No single API call of a deploy should take longer; the rollout wait has its own deadline.
REQUEST_TIMEOUT_S = 30.0
DEFAULT_KUBECONFIG = "~/.kube/config"
# The discovery cache lives in memory only; this path can never exist, so none is read either.
_NO_CACHE_FILE = str(Path(os.devnull) / "mlgitops-discovery.json")
_MISSING, _EMPTY = "does not exist", "is empty"


class KubeError(DeployError):
    """An API request failed; `status` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, message: str, status: int = 0, reason: str = "", body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def missing_namespace(self) -> bool:
        """A 404 about the namespace, not about the object itself."""
        if self.status != 404 or not isinstance(self.body, dict):
            return False
        details = self.body.get("details") or {}
        message = str(self.body.get("message", ""))
        return details.get("kind") == "namespaces" or message.startswith('namespaces "')


def _to_dict(value: Any) -> Manifest:
    if value is None:
        return {}
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else dict(value)


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str | None

    @classmethod
    def of(cls, obj: Manifest) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def kubeconfig_paths(
    explicit: str | Path | None, environ: Mapping[str, str] = os.environ
) -> list[Path]:
    """The files the client reads: `explicit`, else each of $KUBECONFIG, else ~/.kube/config."""
    if explicit:
        return [Path(explicit).expanduser()]
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in listed or [DEFAULT_KUBECONFIG]]


def kubeconfig_problem(path: Path) -> str | None:
    """What is wrong with the file at `path` as a kubeconfig, or None if it is a YAML mapping.

    The client turns most of these into tracebacks (TypeError, UnicodeDecodeError, ...).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _MISSING
    except IsADirectoryError:
        return "is a directory, not a file"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not a text file (not UTF-8)"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or _describe(error)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"is not valid YAML: {problem}{where}"
    if doc is None:
        return _EMPTY
    if not isinstance(doc, dict):
        kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number"}
        kind = kinds.get(type(doc), "a number" if isinstance(doc, float) else "a single value")
        return f"is not a kubeconfig: the YAML is {kind}, not a mapping"
    return None


def _no_kubeconfig(paths: list[Path], explicit: bool) -> str:
    if explicit:
        return f"kubeconfig {paths[0]} {_MISSING}"
    tried = ", ".join(str(p) for p in paths)
    source = "$KUBECONFIG" if os.environ.get("KUBECONFIG") else DEFAULT_KUBECONFIG
    return (
        f"no kubeconfig found (tried {tried}, from {source}); pass --kubeconfig or set KUBECONFIG"
    )


class Kube:
    """The handful of verbs a deploy needs, on plain dicts."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes.dynamic import DynamicClient
        from kubernetes.dynamic.discovery import LazyDiscoverer

        class MemoryDiscoverer(LazyDiscoverer):
            """Discovery kept for the life of this client: no cache file per API server."""

            def _write_cache(self) -> None:
                pass

        self.api_client = api_client
        self._dynamic = DynamicClient(
            api_client, cache_file=_NO_CACHE_FILE, discoverer=MemoryDiscoverer
        )
        self._resources: dict[tuple[str, str], Any] = {}

    @classmethod
    def connect(cls, kubeconfig: str | Path | None = None, context: str | None = None) -> Kube:
        """Load `kubeconfig` (default: $KUBECONFIG, ~/.kube/config), else the in-cluster config."""
        api_client = _api_client(kubeconfig, context)
        api_client.user_agent = f"{FIELD_MANAGER}/deploy"
        try:
            return cls(api_client)
        except Exception as error:  # the client raises many types when discovery fails
            status = getattr(error, "status", None)
            if status in (401, 403):
                raise DeployError(
                    f"the API server refused the kubeconfig's credentials (HTTP {status})"
                ) from None
            raise DeployError(f"cannot reach the API server: {_describe(error)}") from None

    def close(self) -> None:
        self.api_client.close()

    # ----------------------------------------------------------------------------- plumbing

    def resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            from kubernetes.dynamic.exceptions import ResourceNotFoundError

            try:
                self._resources[key] = self._call(
                    lambda: self._dynamic.resources.get(api_version=api_version, kind=kind)
                )
            except ResourceNotFoundError:
                raise DeployError(f"the API server does not serve {api_version} {kind}") from None
        return self._resources[key]

    def _call(self, fn: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

        try:
            return fn()
        except ResourceNotFoundError:
            raise
        except DynamicApiError as error:
            raise _kube_error(error.status, error.reason, error.body) from None
        except ApiException as error:
            raise _kube_error(error.status, error.reason, error.body) from None
        except OSError as error:
            raise KubeError(f"cannot reach the API server: {error}") from None
        except Exception as error:
            # urllib3 errors (timeouts, connection refused) do not share a useful base class.
            if type(error).__module__.startswith("urllib3"):
                raise KubeError(f"cannot reach the API server: {_describe(error)}") from None
            raise

    # -------------------------------------------------------------------------------- verbs

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Manifest | None:
        res = self.resource(api_version, kind)
        try:
            return _to_dict(
                self._call(
                    lambda: res.get(
                        name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT_S
                    )
                )
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[Manifest]:
        res = self.resource(api_version, kind)
        result = self._call(
            lambda: res.get(
                namespace=namespace,
                label_selector=label_selector or None,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        )
        return list(_to_dict(result).get("items") or [])

    def apply(self, obj: Manifest, *, dry_run: bool = False, force: bool = True) -> Manifest:
        """Server-side apply under the `mlgitops` field manager."""
        ref = ObjectRef.of(obj)
        res = self.resource(ref.api_version, ref.kind)
        return _to_dict(
            self._call(
                lambda: self._dynamic.server_side_apply(
                    res,
                    body=obj,
                    name=ref.name,
                    namespace=ref.namespace,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=force,
                    dry_run="All" if dry_run else None,
                    _request_timeout=REQUEST_TIMEOUT_S,
                )
            )
        )

    def create(self, obj: Manifest) -> Manifest:
        ref = ObjectRef.of(obj)
        res = self.resource(ref.api_version, ref.kind)
        return _to_dict(
            self._call(
                lambda: res.create(
                    body=obj,
                    namespace=ref.namespace,
                    field_manager=FIELD_MANAGER,
                    _request_timeout=REQUEST_TIMEOUT_S,
                )
            )
        )

    def replace(self, obj: Manifest) -> Manifest:
        """PUT; with metadata.resourceVersion set this is a compare-and-swap (409 if stale)."""
        ref = ObjectRef.of(obj)
        res = self.resource(ref.api_version, ref.kind)
        return _to_dict(
            self._call(
                lambda: res.replace(
                    body=obj,
                    name=ref.name,
                    namespace=ref.namespace,
                    field_manager=FIELD_MANAGER,
                    _request_timeout=REQUEST_TIMEOUT_S,
                )
            )
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        resource_version: str | None = None,
    ) -> None:
        res = self.resource(api_version, kind)
        body = (
            {"preconditions": {"resourceVersion": resource_version}} if resource_version else None
        )
        self._call(
            lambda: res.delete(
                name=name, namespace=namespace, body=body, _request_timeout=REQUEST_TIMEOUT_S
            )
        )


def _api_client(kubeconfig: str | Path | None, context: str | None) -> Any:
    from kubernetes import client, config

    paths = kubeconfig_paths(kubeconfig)
    problems = [(path, kubeconfig_problem(path)) for path in paths]
    for path, problem in problems:
        if problem not in (None, _MISSING, _EMPTY):
            raise DeployError(f"kubeconfig {path} {problem}")
    usable = [path for path, problem in problems if problem is None]
    if not usable:
        if kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except Exception as error:  # ConfigException, or OSError on the token files
                raise DeployError(
                    f"cannot load the in-cluster config: {_describe(error)}"
                ) from None
            return client.ApiClient(configuration)
        if len(paths) == 1 and problems[0][1] == _EMPTY:
            raise DeployError(f"kubeconfig {paths[0]} {_EMPTY}")
        raise DeployError(_no_kubeconfig(paths, kubeconfig is not None))
    where = os.pathsep.join(str(path) for path in usable)
    try:
        return config.new_client_from_config(config_file=where, context=context)
    except Exception as error:  # a mapping with wrong shapes raises TypeError, KeyError, ...
        raise DeployError(f"cannot load the kubeconfig {where}: {_describe(error)}") from None


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _kube_error(status: Any, reason: Any, body: Any) -> KubeError:
    import json

    parsed: Any = body
    if isinstance(body, bytes | str):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    message = ""
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or "")
    code = int(status or 0)
    text = message or str(reason or "") or f"HTTP {code}"
    return KubeError(f"{text} (HTTP {code})", code, str(reason or ""), parsed)
