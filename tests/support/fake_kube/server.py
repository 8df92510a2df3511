"""HTTP front end (stdlib ThreadingHTTPServer) and the FakeKubeServer facade."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from . import openapi
from .api import SYSTEM_NAMESPACES, Api, ApiError, Request, decode_body, status_object
from .controller import Controller
from .rbac import ADMIN_TOKEN, Attributes, Authorizer, Subject
from .registry_view import RegistryView
from .resources import BY_GVR, ResourceType, by_kind, lookup
from .store import ExpiredError, Obj, Store, parse_field_selector, parse_label_selector
from .tables import to_table, wants_table

DEFAULT_WATCH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    verb: str  # get, list, watch, create, update, patch, delete, discovery, openapi...
    resource: str  # plural ("" for non-resource paths)
    status: int


@dataclass
class Route:
    rtype: ResourceType
    namespace: str
    name: str
    subresource: str


def parse_resource_path(path: str) -> Route | None:
    """Map /api/v1/... and /apis/g/v/... paths to a resource route."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = BY_GVR.get((group, version, rest[2]))
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    rtype = BY_GVR.get((group, version, rest[0]))
    if rtype is None:
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in rtype.subresources:
        return None
    return Route(rtype, namespace, name, sub)


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection; close() ends and joins all of them."""

    def __init__(self, fake: FakeKubeServer) -> None:
        self.fake = fake
        self.connections: dict[socket.socket, threading.Thread] = {}
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"fake-kube-conn-{client_address[1]}",
            daemon=True,
        )
        with self.conn_lock:
            self.connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.pop(request, None)
        super().shutdown_request(request)

    def close(self, timeout: float = 5.0) -> list[str]:
        """After shutdown(): end open connections (idle keep-alives, watches) and join.

        Returns the names of connection threads that did not finish in time.
        """
        with self.conn_lock:
            open_connections = dict(self.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in open_connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        self.server_close()
        return [t.name for t in open_connections.values() if t.is_alive()]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked watch streams
    server: _HTTPServer
    timeout = 120  # idle keep-alive connections do not pin a thread forever
    disable_nagle_algorithm = True  # header and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------ plumbing

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = parse_resource_path(url.path)
        if route is None:
            verb = "openapi" if url.path.startswith("/openapi") else "discovery"
        else:
            verb = _verb(method, route, query)

        def record(code: int) -> None:
            # Before the response goes out, so a client that saw it also sees the record.
            resource = route.rtype.plural if route else ""
            fake._record(RequestRecord(method, url.path, query, verb, resource, code))

        payload: Any
        try:
            subject = None
            if fake.authorizer.enabled:
                subject = fake.authorizer.authenticate(self.headers.get("Authorization"))
                if route is not None:
                    fake.authorizer.authorize(subject, _attributes(verb, route, query))
            if route is None:
                code, payload = self._non_resource(url.path)
            elif verb == "watch":
                self._watch(fake, route, query, record)
                return
            else:
                code, payload = fake._handle(
                    method, verb, route, query, body, self.headers, subject
                )
        except ApiError as err:
            code, payload = err.code, err.status()
        except Exception as exc:  # a bug in the fake: answer as an apiserver would
            fake.errors.append(traceback.format_exc())
            code = 500
            payload = status_object(500, "InternalError", f"{type(exc).__name__}: {exc}")
        record(code)
        try:
            self._send_json(code, payload)
        except OSError:
            self.close_connection = True

    def _send_json(self, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _non_resource(self, path: str) -> tuple[int, Any]:
        fake = self.server.fake
        path = path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        doc: Any = None
        if path == "/version":
            doc = openapi.SERVER_VERSION
        elif path in ("/healthz", "/readyz", "/livez"):
            return 200, "ok"
        elif path == "/api":
            doc = openapi.api_versions(f"127.0.0.1:{fake.port}")
        elif path == "/apis":
            # Aggregated discovery (apidiscovery.k8s.io/v2) is declined by always
            # answering plain application/json; clients then use legacy discovery.
            doc = openapi.api_group_list()
        elif parts[:1] == ["api"] and len(parts) == 2:
            doc = openapi.api_resource_list("", parts[1])
        elif parts[:1] == ["apis"] and len(parts) == 2:
            doc = openapi.api_group(parts[1])
        elif parts[:1] == ["apis"] and len(parts) == 3:
            doc = openapi.api_resource_list(parts[1], parts[2])
        elif path == "/openapi/v2":
            doc = openapi.openapi_v2()
        elif path == "/openapi/v3":
            doc = openapi.openapi_v3_root()
        elif parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            gv = parts[3:] if parts[2] == "apis" else ["", parts[3]]
            if parts[2] in ("api", "apis"):
                doc = openapi.openapi_v3_doc(gv[0], gv[1])
        if doc is None:
            return 404, status_object(
                404, "NotFound", "the server could not find the requested resource"
            )
        return 200, doc

    # --------------------------------------------------------------- watch

    def _watch(
        self,
        fake: FakeKubeServer,
        route: Route,
        query: dict[str, str],
        record: Callable[[int], None],
    ) -> None:
        expired: Obj | None = None
        try:
            events = fake._watch_events(route, query)  # ApiError surfaces before headers
        except ExpiredError as exc:
            expired = {"type": "ERROR", "object": status_object(410, "Expired", str(exc))}
            events = iter(())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        record(200)  # when the stream starts, so tests can see open watches
        self.wfile.flush()
        self.close_connection = True
        try:
            if expired:
                self._chunk(expired)
            as_table = wants_table(self.headers.get("Accept", ""))
            try:
                for event in events:
                    if event is not None:
                        if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            event = {**event, "object": to_table(route.rtype, [event["object"]])}
                        self._chunk(event)
            except ExpiredError as exc:
                self._chunk({"type": "ERROR", "object": status_object(410, "Expired", str(exc))})
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # client went away

    def _chunk(self, event: Obj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _attributes(verb: str, route: Route, query: dict[str, str]) -> Attributes:
    """What RBAC judges: a list or watch has a name only when narrowed to one object."""
    name = route.name
    if verb in ("list", "watch"):
        selector = query.get("fieldSelector", "")
        prefix = "metadata.name="
        narrowed = selector.startswith(prefix) and "," not in selector
        name = selector.removeprefix(prefix) if narrowed else ""
    return Attributes(verb, route.rtype, route.namespace, name, route.subresource)


def _verb(method: str, route: Route, query: dict[str, str]) -> str:
    if method == "GET":
        if route.name:
            return "get"
        return "watch" if query.get("watch") in ("true", "1", "True") else "list"
    if method == "DELETE":
        return "delete" if route.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]


class FakeKubeServer:
    """A local, in-memory Kubernetes API server for tests (127.0.0.1 only).

    Use as a context manager or call start()/stop().
    """

    def __init__(
        self,
        *,
        ready_delay: float = 0.2,
        time_scale: float = 0.01,
        require_namespace: bool = True,
        workdir: str | Path | None = None,
    ) -> None:
        self.store = Store()
        self.api = Api(self.store, require_namespace=require_namespace)
        self.authorizer = Authorizer(self.store)
        self.errors: list[str] = []  # tracebacks of bugs in the fake (HTTP 500s, controller)
        self.controller = Controller(
            self.store, ready_delay=ready_delay, time_scale=time_scale, errors=self.errors
        )
        self._workdir = Path(workdir) if workdir else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self.kubeconfig_path: Path | None = None
        self._seed_namespaces()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeKubeServer:
        if self._http is not None:
            return self
        self.store.closed = False  # allows start() again after stop()
        self._http = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-kube-http",
            daemon=True,
        )
        self._thread.start()
        self.controller.start()
        self.kubeconfig_path = self.write_kubeconfig()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self.controller.stop()
        self.store.close()  # wakes watch streams, which then end
        self._http.shutdown()
        stuck = self._http.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if stuck:
            self.errors.append(f"connection threads still running after stop(): {stuck}")
        self._http = self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = self._workdir = None

    def __enter__(self) -> FakeKubeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._http is not None, "server not started"
        return self._http.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enable_rbac(self) -> None:
        """From now on every request needs a token and is authorized by the stored Roles and
        RoleBindings (see `rbac`); the default kubeconfig's token is a cluster admin."""
        self.authorizer.enabled = True

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token of ServiceAccount `namespace/name` (valid while it exists)."""
        return self.authorizer.service_account_token(namespace, name)

    def write_kubeconfig(
        self,
        path: str | Path | None = None,
        namespace: str = "default",
        token: str = ADMIN_TOKEN,
    ) -> Path:
        """Write a kubeconfig (cluster/user/context 'fake-kube') pointing at this server, with
        `token` as the user's credential (default: the admin's)."""
        if path is None:
            if self._workdir is None:
                self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="fake-kube-")
                self._workdir = Path(self._tmp.name)
            path = self._workdir / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake-kube", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-kube", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "fake-kube",
                    "context": {
                        "cluster": "fake-kube",
                        "user": "fake-kube",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "fake-kube",
            "preferences": {},
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config))
        return path

    # ------------------------------------------------------------ control

    def fail_image(
        self, image: str | Callable[[str], bool], reason: str = "CrashLoopBackOff"
    ) -> None:
        """Containers running a matching image never become Ready.

        `image` is an exact image reference (which also matches it pinned to any digest,
        `image@sha256:...`) or a predicate on the image string.
        `reason` is the container's waiting reason: "CrashLoopBackOff" (restartCount
        keeps increasing) or "ImagePullBackOff"/"ErrImagePull" (the pod stays Pending).
        """
        pred = image if callable(image) else (lambda s, want=image: s.split("@")[0] == want)
        with self.store.lock:
            self.controller.failing.append((pred, reason))

    def heal_images(self) -> None:
        """Undo every fail_image(); pods then become Ready after `ready_delay`."""
        with self.store.lock:
            self.controller.failing.clear()

    @property
    def registry(self) -> RegistryView:
        """The registry as the nodes see it: `registry.push("repo:tag", digest)` (re-)points a
        tag; pods get their imageID from it (see `registry_view`)."""
        return self.controller.registry

    @property
    def ready_delay(self) -> float:
        """Seconds before a new pod becomes Ready (settable at any time)."""
        return self.controller.ready_delay

    @ready_delay.setter
    def ready_delay(self, seconds: float) -> None:
        self.controller.ready_delay = seconds

    @property
    def scale_down_delay(self) -> float:
        """Seconds before the pods of a scaled-down ReplicaSet go (settable at any time)."""
        return self.controller.scale_down_delay

    @scale_down_delay.setter
    def scale_down_delay(self, seconds: float) -> None:
        self.controller.scale_down_delay = seconds

    @property
    def time_scale(self) -> float:
        """Factor applied to durations in specs such as progressDeadlineSeconds."""
        return self.controller.time_scale

    @time_scale.setter
    def time_scale(self, factor: float) -> None:
        self.controller.time_scale = factor

    def wait_for_rollout(self, name: str, namespace: str = "default", timeout: float = 10) -> Obj:
        """Wait until a Deployment's rollout completed (or its deadline passed); return it.

        Check `status.conditions` of the result to tell the two outcomes apart.
        """

        def finished() -> Obj | None:
            dep = self.get_object("deployments", name, namespace)
            status = (dep or {}).get("status") or {}
            if not dep or status.get("observedGeneration") != dep["metadata"]["generation"]:
                return None
            reasons = {c["type"]: c["reason"] for c in status.get("conditions") or []}
            done = ("NewReplicaSetAvailable", "ProgressDeadlineExceeded")
            return dep if reasons.get("Progressing") in done else None

        return self.wait_for(finished, timeout)

    def get_object(self, resource: str, name: str, namespace: str = "default") -> Obj | None:
        """A copy of a stored object; `resource` is e.g. 'deployments', 'deploy', 'Lease'."""
        rtype = lookup(resource)
        return self.store.get(rtype, namespace if rtype.namespaced else "", name)

    def list_objects(
        self, resource: str, namespace: str = "", label_selector: str = ""
    ) -> list[Obj]:
        match = parse_label_selector(label_selector)
        items, _ = self.store.list(
            lookup(resource), namespace, lambda o: match(o["metadata"].get("labels") or {})
        )
        return items

    def put_object(self, obj: Obj) -> Obj:
        """Store obj directly (no validation, defaults or managedFields)."""
        rtype = by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rtype is None:
            raise KeyError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
        obj = json.loads(json.dumps(obj))
        if rtype.namespaced:
            obj.setdefault("metadata", {}).setdefault("namespace", "default")
        return self.store.commit(rtype, obj)

    def delete_object(self, resource: str, name: str, namespace: str = "default") -> None:
        rtype = lookup(resource)
        self.store.delete(rtype, namespace if rtype.namespaced else "", name)
        self.api.collect_garbage()

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02
    ) -> Any:
        """Poll predicate until truthy; returns its value or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met within timeout")
            time.sleep(interval)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._records_lock:
            return list(self._records)

    def count_requests(
        self,
        verb: str | None = None,
        resource: str | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> int:
        """Count recorded requests; `path` is a regular expression searched in the path."""
        return sum(
            1
            for r in self.requests
            if (verb is None or r.verb == verb)
            and (resource is None or r.resource == resource)
            and (method is None or r.method == method)
            and (path is None or re.search(path, r.path))
        )

    def reset(self) -> None:
        """Forget all objects (re-seeding system namespaces), requests and failures.

        No DELETED events are sent; watches from before the reset get 410 Expired.
        """
        with self.store.lock:
            self.store.clear()
            self.controller.reset()
            self._seed_namespaces()
        with self._records_lock:
            self._records.clear()

    def _record(self, rec: RequestRecord) -> None:
        with self._records_lock:
            self._records.append(rec)

    # ------------------------------------------------------------ handlers

    def _seed_namespaces(self) -> None:
        for ns in SYSTEM_NAMESPACES:
            self.store.commit(
                lookup("namespaces"),
                {
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )

    def _handle(
        self,
        method: str,
        verb: str,
        route: Route,
        query: dict[str, str],
        body: bytes,
        headers: Any,
        subject: Subject | None = None,
    ) -> tuple[int, Any]:
        req = Request(
            route.rtype,
            route.namespace,
            route.name,
            route.subresource,
            query,
            headers.get("User-Agent", ""),
        )
        ctype = headers.get("Content-Type", "application/json")
        table = wants_table(headers.get("Accept", "")) and not route.subresource
        if verb == "get":
            obj = self.api.get(req)
            return 200, to_table(route.rtype, [obj]) if table else obj
        if verb == "list":
            listing = self._list(route, query)
            if table:
                rv = listing["metadata"]["resourceVersion"]
                return 200, to_table(route.rtype, listing["items"], rv)
            return 200, listing
        if verb == "create":
            if route.subresource:
                raise ApiError(405, "MethodNotAllowed", "create is not supported on subresources")
            return 201, self.api.create(req, decode_body(body, ctype))
        if verb == "update":
            return 200, self.api.update(req, decode_body(body, ctype))
        if verb == "patch":
            with self.store.lock:  # apply creates missing objects: answer 201 for those
                existed = self.store.get(route.rtype, route.namespace, route.name) is not None
                applying = ctype.split(";")[0].strip() == "application/apply-patch+yaml"
                if subject is not None and applying and not existed:
                    # Creating through apply is also authorized as `create`, with the name.
                    self.authorizer.authorize(
                        subject,
                        Attributes("create", route.rtype, route.namespace, route.name, ""),
                    )
                obj = self.api.patch(req, body, ctype)
            return (200 if existed else 201), obj
        if verb == "delete":
            options = decode_body(body, ctype) if body.strip() else None
            return 200, self.api.delete(req, options if isinstance(options, dict) else None)
        if verb == "deletecollection":
            items = self._list(route, query)["items"]
            for item in items:
                meta = item["metadata"]
                self.api.delete(
                    Request(route.rtype, meta.get("namespace", ""), meta["name"], query=query)
                )
            return 200, self._list_obj(route.rtype, items, self.store.resource_version)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def _matcher(self, query: dict[str, str]) -> Callable[[Obj], bool]:
        try:
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = parse_field_selector(query.get("fieldSelector", ""))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        return lambda o: labels(o["metadata"].get("labels") or {}) and fields(o)

    def _list(self, route: Route, query: dict[str, str]) -> Obj:
        items, rv = self.store.list(route.rtype, route.namespace, self._matcher(query))
        return self._list_obj(route.rtype, items, rv)

    @staticmethod
    def _list_obj(rtype: ResourceType, items: list[Obj], rv: int) -> Obj:
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.group_version,
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        }

    def _watch_events(self, route: Route, query: dict[str, str]) -> Iterator[Obj | None]:
        """Yield watch events (None = idle heartbeat) until timeout or shutdown.

        The first item is produced eagerly by the caller so that errors surface
        as a plain HTTP error before the stream starts.
        """
        match = self._matcher(query)
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        deadline = time.monotonic() + timeout
        rv_param = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") == "true"
        bookmarks = query.get("allowWatchBookmarks") == "true"
        rtype = route.rtype

        def in_scope(obj: Obj) -> bool:
            ns = obj["metadata"].get("namespace", "")
            return (not route.namespace or ns == route.namespace) and match(obj)

        with self.store.lock:
            if rv_param in ("", "0") or initial:
                items, rv = self.store.list(rtype, route.namespace, match)
                backlog: list[Obj] = [{"type": "ADDED", "object": o} for o in items]
                if initial and bookmarks:
                    # Marks the end of the initial state for WatchList clients (kubectl).
                    mark = {
                        "resourceVersion": str(rv),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    }
                    obj = {"kind": rtype.kind, "apiVersion": rtype.group_version, "metadata": mark}
                    backlog.append({"type": "BOOKMARK", "object": obj})
            else:
                try:
                    rv = int(rv_param)
                except ValueError as exc:
                    raise ApiError(
                        400, "BadRequest", f"invalid resourceVersion {rv_param}"
                    ) from exc
                self.store.events_after(rv, rtype)  # raises ExpiredError early
                backlog = []

        def stream() -> Iterator[Obj | None]:
            nonlocal rv
            yield from backlog
            while not self.store.closed:
                with self.store.changed:
                    events = self.store.events_after(rv, rtype)
                    if not events:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self.store.closed:
                            return
                        self.store.changed.wait(min(remaining, 1.0))
                        events = self.store.events_after(rv, rtype)
                if not events:
                    if time.monotonic() >= deadline:
                        return
                    yield None
                    continue
                for e in events:
                    rv = e.rv
                    if in_scope(e.obj):
                        yield {"type": e.type, "object": e.obj}

        return stream()
