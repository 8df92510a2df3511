"""Thread-safe object storage with a global resourceVersion and a watch log."""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .resources import BY_GVR, ResourceType

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # (group, plural, namespace, name)

HISTORY = 10_000  # watch events kept for resuming from an older resourceVersion


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generation_content(obj: Obj) -> Obj:
    """What `metadata.generation` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _comparable(obj: Obj) -> Obj:
    """obj without managedFields timestamps, which alone do not make a change."""
    meta = dict(obj.get("metadata", {}))
    meta["managedFields"] = [
        {k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []
    ]
    return {**obj, "metadata": meta}


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    rtype: ResourceType
    obj: Obj


class ExpiredError(Exception):
    """The requested resourceVersion is older than the retained watch history."""


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._objects: dict[Key, Obj] = {}
        self._rv = 0
        self._history: deque[WatchEvent] = deque(maxlen=HISTORY)
        self._oldest_rv = 0  # events after this rv are all in history
        self.closed = False

    # -------------------------------------------------------------- reads

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get(self._key(rtype, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        rtype: ResourceType,
        namespace: str = "",
        predicate: Callable[[Obj], bool] | None = None,
    ) -> tuple[list[Obj], int]:
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (group, plural, ns, _), obj in sorted(self._objects.items())
                if group == rtype.group
                and plural == rtype.plural
                and (not namespace or ns == namespace)
                and (predicate is None or predicate(obj))
            ]
            return items, self._rv

    def all_objects(self) -> list[tuple[ResourceType, Obj]]:
        """Snapshot used by the controllers; objects are copies."""
        with self.lock:
            out = []
            for (group, plural, _, _), obj in self._objects.items():
                version = obj["apiVersion"].rpartition("/")[2]
                out.append((BY_GVR[(group, version, plural)], copy.deepcopy(obj)))
            return out

    # -------------------------------------------------------------- writes

    def commit(self, rtype: ResourceType, obj: Obj, dry_run: bool = False) -> Obj:
        """Store obj (create or replace), filling bookkeeping metadata.

        Callers hold no assumptions about the result beyond what is returned;
        concurrency checks happen in the caller under `self.lock`.
        """
        with self.lock:
            meta = obj.setdefault("metadata", {})
            key = self._key(rtype, meta.get("namespace", ""), meta["name"])
            old = self._objects.get(key)
            obj["apiVersion"], obj["kind"] = rtype.group_version, rtype.kind
            if old is None:
                meta["uid"] = str(uuid.uuid4())
                meta["creationTimestamp"] = now_rfc3339()
                meta["generation"] = 1
            else:
                old_meta = old["metadata"]
                meta["uid"] = old_meta["uid"]
                meta["creationTimestamp"] = old_meta["creationTimestamp"]
                bump = generation_content(obj) != generation_content(old)
                meta["generation"] = old_meta.get("generation", 1) + (1 if bump else 0)
                meta["resourceVersion"] = old_meta.get("resourceVersion")
                if _comparable(old) == _comparable(obj):
                    # A no-op write does not bump resourceVersion (like the real server).
                    return copy.deepcopy(old)
            if dry_run:
                if old is None:
                    meta.pop("resourceVersion", None)
                return copy.deepcopy(obj)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            stored = copy.deepcopy(obj)
            self._objects[key] = stored
            self._record("ADDED" if old is None else "MODIFIED", rtype, stored)
            return copy.deepcopy(stored)

    def delete(self, rtype: ResourceType, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.pop(self._key(rtype, namespace, name), None)
            if obj is None:
                return None
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._record("DELETED", rtype, obj)
            return copy.deepcopy(obj)

    def clear(self) -> None:
        with self.lock:
            self._objects.clear()
            self._history.clear()
            self._oldest_rv = self._rv
            self.changed.notify_all()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()

    # -------------------------------------------------------------- watch

    def events_after(self, rv: int, rtype: ResourceType) -> list[WatchEvent]:
        """Events for rtype with resourceVersion > rv. Caller holds the lock."""
        if rv < self._oldest_rv:
            raise ExpiredError(f"too old resource version: {rv} ({self._oldest_rv})")
        return [
            e
            for e in self._history
            if e.rv > rv and e.rtype.plural == rtype.plural and e.rtype.group == rtype.group
        ]

    def _record(self, type_: str, rtype: ResourceType, obj: Obj) -> None:
        if len(self._history) == self._history.maxlen:
            self._oldest_rv = self._history[0].rv
        self._history.append(WatchEvent(self._rv, type_, rtype, copy.deepcopy(obj)))
        self.changed.notify_all()

    @staticmethod
    def _key(rtype: ResourceType, namespace: str, name: str) -> Key:
        return (rtype.group, rtype.plural, namespace if rtype.namespaced else "", name)


# ---------------------------------------------------------------- selectors

_REQ_SPLIT = re.compile(r",(?![^()]*\))")
_SET_REQ = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def parse_label_selector(selector: str) -> Callable[[dict[str, str]], bool]:
    """Equality (=, ==, !=), set-based (in, notin) and existence (k, !k) requirements."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for raw in _REQ_SPLIT.split(selector or ""):
        req = raw.strip()
        if not req:
            continue
        if m := _SET_REQ.match(req):
            key, op = m.group(1), m.group(2)
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
        elif "=" in req:
            key, value = (s.strip() for s in req.replace("==", "=").split("=", 1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif req.startswith("!"):
            checks.append(lambda lb, k=req[1:].strip(): k not in lb)
        elif re.fullmatch(r"[\w./-]+", req):
            checks.append(lambda lb, k=req: k in lb)
        else:
            raise ValueError(f"unable to parse requirement: {req!r}")
    return lambda labels: all(c(labels) for c in checks)


def parse_field_selector(selector: str) -> Callable[[Obj], bool]:
    """`a.b=v`, `a.b==v` and `a.b!=v` over dotted paths (metadata.name, status.phase...)."""
    checks: list[Callable[[Obj], bool]] = []
    for req in filter(None, (r.strip() for r in (selector or "").split(","))):
        negate = "!=" in req
        path, value = (s.strip() for s in req.replace("!=", "=").replace("==", "=").split("=", 1))

        def check(
            obj: Obj, parts: list[str] = path.split("."), v: str = value, neg: bool = negate
        ) -> bool:
            node: Any = obj
            for p in parts:
                node = node.get(p) if isinstance(node, dict) else None
            actual = "" if node is None else str(node)
            return (actual != v) if neg else (actual == v)

        checks.append(check)
    return lambda obj: all(c(obj) for c in checks)
