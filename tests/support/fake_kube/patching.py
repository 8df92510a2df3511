"""Patch flavours and a small server-side-apply engine.

Field ownership is tracked as sets of *paths*; a path is a tuple of fieldsV1
elements ("f:spec", 'k:{"name":"app"}', "."), so the sets serialise directly
to and from the `fieldsV1` trees in `metadata.managedFields`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from .store import now_rfc3339

Path = tuple[str, ...]
Obj = dict[str, Any]

_MISSING = object()

# Bookkeeping fields no manager owns.
_UNOWNED_METADATA = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
}


class PatchError(Exception):
    """A malformed patch (-> 400/422)."""


class ApplyConflictError(Exception):
    def __init__(self, conflicts: list[tuple[str, Path]]) -> None:
        self.conflicts = conflicts
        # Worded like the real API server's message, which kubectl users know.
        by_manager: dict[str, list[str]] = {}
        for manager, path in conflicts:
            by_manager.setdefault(manager, []).append(render_path(path))
        parts = [
            f'conflict with "{m}": {paths[0]}'
            if len(paths) == 1
            else f'conflicts with "{m}":\n' + "\n".join(f"- {p}" for p in paths)
            for m, paths in by_manager.items()
        ]
        n = len(conflicts)
        super().__init__(f"Apply failed with {n} conflict{'s' * (n > 1)}: " + "\n".join(parts))


# ---------------------------------------------------------------- list keys


def list_key(field: str, items: list[Any]) -> str | None:
    """The merge key for a list of maps, or None when the list is atomic.

    Approximates the `x-kubernetes-list-map-keys` of the common built-in types.
    """
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    candidates = {
        "ports": ("containerPort", "port"),
        "volumeMounts": ("mountPath",),
        "conditions": ("type",),
    }.get(field, ("name",))
    for key in candidates:
        if all(key in i for i in items):
            return key
    return None


def _item_element(key: str, item: Obj) -> str:
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))


def _find_item(items: list[Any], element: str) -> int:
    wanted = json.loads(element[2:])
    for idx, item in enumerate(items):
        if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
            return idx
    return -1


# ------------------------------------------------------------ merge patches


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = json_merge_patch(result.get(k), v)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Merge patch where keyed lists merge by key; supports `$patch: delete|replace`."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
        if patch.get("$patch") == "delete":
            return None
        result = dict(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            if k.startswith("$"):  # $setElementOrder/... directives: ordering only
                continue
            if v is None:
                result.pop(k, None)
            else:
                result[k] = strategic_merge_patch(result.get(k), v, k)
        return result
    if isinstance(patch, list) and isinstance(target, list):
        key = list_key(field, [p for p in patch if not _is_directive(p)] or patch)
        if key and list_key(field, target) in (key, None):
            return _merge_keyed_list(target, patch, key)
    return copy.deepcopy(patch)


def _is_directive(item: Any) -> bool:
    return isinstance(item, dict) and "$patch" in item


def _merge_keyed_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = list(target)
    for item in patch:
        idx = next((i for i, t in enumerate(result) if t.get(key) == item.get(key)), -1)
        if isinstance(item, dict) and item.get("$patch") == "delete":
            if idx >= 0:
                result.pop(idx)
        elif idx >= 0:
            result[idx] = strategic_merge_patch(result[idx], item)
        else:
            result.append(strategic_merge_patch({}, item))
    return result


# ---------------------------------------------------------------- JSON patch


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind, ptr = op["op"], op["path"]
        except (KeyError, TypeError) as exc:
            raise PatchError(f"invalid json patch operation {op!r}") from exc
        if kind == "test":
            if _pointer_get(doc, ptr) != op.get("value"):
                raise PatchError(f"test operation failed at {ptr}")
        elif kind == "remove":
            doc = _pointer_remove(doc, ptr)[0]
        elif kind == "add":
            doc = _pointer_add(doc, ptr, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            _pointer_get(doc, ptr)
            doc = _pointer_remove(doc, ptr)[0]
            doc = _pointer_add(doc, ptr, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_pointer_get(doc, op["from"]))
            if kind == "move":
                doc = _pointer_remove(doc, op["from"])[0]
            doc = _pointer_add(doc, ptr, value)
        else:
            raise PatchError(f"unknown json patch op {kind!r}")
    return doc


def _split_pointer(ptr: str) -> list[str]:
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise PatchError(f"invalid JSON pointer {ptr!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr[1:].split("/")]


def _step(node: Any, token: str) -> Any:
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    raise PatchError(f"path element {token!r} not found")


def _pointer_get(doc: Any, ptr: str) -> Any:
    node = doc
    for token in _split_pointer(ptr):
        node = _step(node, token)
    return node


def _pointer_add(doc: Any, ptr: str, value: Any) -> Any:
    tokens = _split_pointer(ptr)
    if not tokens:
        return value
    parent = _pointer_get(
        doc, "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])
    )
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"invalid list index {last!r}")
    else:
        raise PatchError(f"cannot add to {ptr!r}")
    return doc


def _pointer_remove(doc: Any, ptr: str) -> tuple[Any, Any]:
    tokens = _split_pointer(ptr)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = doc
    for token in tokens[:-1]:
        parent = _step(parent, token)
    removed = _step(parent, tokens[-1])
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[int(tokens[-1])]
    return doc, removed


# ------------------------------------------------------------ field sets


def field_paths(obj: Obj, prefix: Path = ()) -> set[Path]:
    """Leaf paths of an object, as a field manager would own them."""
    out: set[Path] = set()
    for k, v in obj.items():
        if not prefix and k in ("apiVersion", "kind", "status"):
            continue
        if prefix == ("f:metadata",) and k in _UNOWNED_METADATA:
            continue
        path = (*prefix, f"f:{k}")
        if isinstance(v, dict) and v:
            out |= field_paths(v, path)
        elif isinstance(v, list) and (key := list_key(k, v)):
            for item in v:
                item_path = (*path, _item_element(key, item))
                out.add((*item_path, "."))
                out |= field_paths(item, item_path)
        else:
            out.add(path)
    return out


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for el in path:
        if el == ".":
            return node
        if el.startswith("f:") and isinstance(node, dict) and el[2:] in node:
            node = node[el[2:]]
        elif el.startswith("k:") and isinstance(node, list) and (idx := _find_item(node, el)) >= 0:
            node = node[idx]
        else:
            return _MISSING
    return node


def _is_item_key(path: Path) -> bool:
    """Whether path is the key field of a keyed list item (e.g. an env var's name)."""
    return (
        len(path) >= 2
        and path[-2].startswith("k:")
        and path[-1].startswith("f:")
        and path[-1][2:] in json.loads(path[-2][2:])
    )


def remove_path(obj: Obj, path: Path) -> None:
    """Delete the field (or keyed list item, for paths ending in '.') at path,
    pruning maps and lists that become empty below the top level."""
    if path and path[-1] == ".":
        path = path[:-1]
    chain: list[tuple[Any, Any]] = []  # (container, key-or-index)
    node: Any = obj
    for el in path:
        if el.startswith("f:") and isinstance(node, dict) and el[2:] in node:
            chain.append((node, el[2:]))
            node = node[el[2:]]
        elif el.startswith("k:") and isinstance(node, list) and (idx := _find_item(node, el)) >= 0:
            chain.append((node, idx))
            node = node[idx]
        else:
            return
    for depth, (container, key) in enumerate(reversed(chain)):
        del container[key]
        if container or len(chain) - depth - 1 <= 1:
            break


def fields_v1(paths: Iterable[Path]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for el in path:
            node = node.setdefault(el, {})
    return tree


def parse_fields_v1(tree: Obj, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for el, sub in tree.items():
        if sub:
            out |= parse_fields_v1(sub, (*prefix, el))
        else:
            out.add((*prefix, el))
    return out


def render_path(path: Path) -> str:
    return "".join(
        "." + el[2:] if el.startswith("f:") else f"[{el[2:]}]" for el in path if el != "."
    )


# ------------------------------------------------------------ managed fields


def read_managers(obj: Obj) -> dict[tuple[str, str], set[Path]]:
    out: dict[tuple[str, str], set[Path]] = {}
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        key = (entry.get("manager", ""), entry.get("operation", "Update"))
        out[key] = parse_fields_v1(entry.get("fieldsV1") or {})
    return out


def write_managers(
    obj: Obj, managers: dict[tuple[str, str], set[Path]], api_version: str, touched: str | None
) -> None:
    previous = {
        (e.get("manager"), e.get("operation")): e
        for e in obj.get("metadata", {}).get("managedFields") or []
    }
    entries = []
    for (manager, operation), paths in managers.items():
        if not paths:
            continue
        old = previous.get((manager, operation))
        time = (
            now_rfc3339() if manager == touched or old is None else old.get("time", now_rfc3339())
        )
        entries.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(paths),
            }
        )
    obj.setdefault("metadata", {})["managedFields"] = entries


def record_update(old: Obj | None, new: Obj, manager: str, api_version: str) -> None:
    """Ownership after a non-apply write: `manager` takes every changed field."""
    managers = read_managers(old) if old else {}
    new_paths = field_paths(new)
    if old is None:
        changed = new_paths
    else:
        # A list item's "." is claimed only by whoever adds the item.
        changed = {
            p
            for p in new_paths
            if (
                value_at(old, p) is _MISSING
                if p[-1] == "."
                else value_at(old, p) != value_at(new, p)
            )
        }
    for key in managers:
        managers[key] = (managers[key] - changed) & new_paths
    managers.setdefault((manager, "Update"), set()).update(changed)
    write_managers(new, managers, api_version, manager)


def apply(live: Obj | None, config: Obj, manager: str, force: bool, api_version: str) -> Obj:
    """Server-side apply `config` for `manager` onto `live` (None -> create)."""
    config = _drop_nulls(config)
    live = copy.deepcopy(live) if live is not None else {}
    managers = read_managers(live)
    applied = field_paths(config)

    conflicts: list[tuple[str, Path]] = []
    for (other, op), owned in managers.items():
        if other == manager and op == "Apply":
            continue
        for path in sorted(applied & owned):
            if path[-1] != "." and value_at(live, path) != value_at(config, path):
                conflicts.append((other, path))
    if conflicts and not force:
        raise ApplyConflictError(conflicts)
    for other, path in conflicts:
        for (name, _op), owned in managers.items():
            if name == other:
                owned.discard(path)

    # Drop what this manager applied before but no longer does, unless shared.
    previous = managers.get((manager, "Apply"), set())
    others = set().union(*(p for k, p in managers.items() if k != (manager, "Apply")))
    keep = applied | others
    # Whole list items first (outermost first), then single fields.
    for path in sorted(previous - keep, key=lambda p: (p[-1] != ".", len(p), p)):
        if path[-1] == "." and any(p[: len(path) - 1] == path[:-1] for p in keep):
            continue  # someone still owns a field of this item
        if _is_item_key(path):
            continue  # an item that stays keeps its key
        remove_path(live, path)

    merged = apply_merge(live, config)
    managers[(manager, "Apply")] = applied
    write_managers(merged, managers, api_version, manager)
    return merged


def apply_merge(live: Any, config: Any, field: str = "") -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        result = dict(live)
        for k, v in config.items():
            result[k] = apply_merge(live[k], v, k) if k in live else copy.deepcopy(v)
        return result
    if isinstance(live, list) and isinstance(config, list):
        key = list_key(field, config)
        if key and list_key(field, live) == key:
            result = list(live)
            for item in config:
                idx = next((i for i, t in enumerate(result) if t.get(key) == item[key]), -1)
                if idx >= 0:
                    result[idx] = apply_merge(result[idx], item)
                else:
                    result.append(copy.deepcopy(item))
            return result
    return copy.deepcopy(config)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
