"""Decode the few protobuf request bodies kubectl's typed clients send.

`kubectl create namespace|configmap|secret|serviceaccount` POST
`application/vnd.kubernetes.protobuf` and have no JSON fallback, so these
kinds (and ObjectMeta's common fields) are decoded by hand. Responses are
always JSON, which those clients accept.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"

Obj = dict[str, Any]


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs; varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _map_entry(raw: bytes, binary: bool) -> tuple[str, str]:
    entry = dict(_fields(raw))
    key = bytes(entry.get(1, b"")).decode()  # type: ignore[arg-type]
    value = bytes(entry.get(2, b""))  # type: ignore[arg-type]
    return key, base64.b64encode(value).decode() if binary else value.decode()


def _message(raw: bytes, schema: dict[int, tuple[str, str]]) -> Obj:
    """Decode raw by schema: number -> (json name, kind). Kinds: str, bool, int,
    strlist, map, bytesmap, meta, finalizers, refs."""
    obj: Obj = {}
    for number, value in _fields(raw):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind in ("map", "bytesmap"):
            assert isinstance(value, bytes)
            k, v = _map_entry(value, kind == "bytesmap")
            obj.setdefault(name, {})[k] = v
        elif kind == "str":
            if value:  # gogo-protobuf writes unset optional strings as ""
                obj[name] = bytes(value).decode()  # type: ignore[arg-type]
        elif kind == "bool":
            obj[name] = bool(value)
        elif kind == "strlist":
            obj.setdefault(name, []).append(bytes(value).decode())  # type: ignore[arg-type]
        else:
            assert isinstance(value, bytes)
            item = _message(value, _SCHEMAS[kind])
            if kind == "refs":
                obj.setdefault(name, []).append(item)
            else:
                obj[name] = item
    return obj


_SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "meta": {
        1: ("name", "str"),
        2: ("generateName", "str"),
        3: ("namespace", "str"),
        11: ("labels", "map"),
        12: ("annotations", "map"),
        14: ("finalizers", "strlist"),
    },
    "nsspec": {1: ("finalizers", "strlist")},
    "refs": {1: ("name", "str")},
}

KINDS: dict[str, dict[int, tuple[str, str]]] = {
    "Namespace": {1: ("metadata", "meta"), 2: ("spec", "nsspec")},
    "ConfigMap": {
        1: ("metadata", "meta"),
        2: ("data", "map"),
        3: ("binaryData", "bytesmap"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "meta"),
        2: ("data", "bytesmap"),
        3: ("type", "str"),
        4: ("stringData", "map"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", "meta"),
        2: ("secrets", "refs"),
        3: ("imagePullSecrets", "refs"),
        4: ("automountServiceAccountToken", "bool"),
    },
}


def decode(body: bytes) -> Obj:
    """Decode a runtime.Unknown envelope holding one of KINDS into a JSON-style dict."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing protobuf magic prefix")
    envelope = dict(_fields(body[len(MAGIC) :]))
    type_meta = dict(_fields(bytes(envelope.get(1, b""))))  # type: ignore[arg-type]
    api_version = bytes(type_meta.get(1, b"")).decode()  # type: ignore[arg-type]
    kind = bytes(type_meta.get(2, b"")).decode()  # type: ignore[arg-type]
    if kind not in KINDS:
        raise ProtobufError(f"protobuf bodies for {kind or 'this kind'} are not supported")
    obj = _message(bytes(envelope.get(2, b"")), KINDS[kind])  # type: ignore[arg-type]
    return {"apiVersion": api_version, "kind": kind, **obj}
