"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1): the signature covers the
pre-authentication encoding of payload type and payload, never re-serialized JSON."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from mlgitops.attest.keys import SigningKey
from mlgitops.errors import AttestationError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature)

    def to_json(self) -> str:
        document = {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": keyid, "sig": base64.b64encode(sig).decode()}
                for keyid, sig in self.signatures
            ],
        }
        return json.dumps(document, indent=2) + "\n"


def sign(payload: bytes, key: SigningKey, key_id: str) -> Envelope:
    signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))
    return Envelope(IN_TOTO_PAYLOAD_TYPE, payload, ((key_id, signature),))


def _b64(value: object, source: str, field: str) -> bytes:
    if not isinstance(value, str):
        raise AttestationError(f"{source}: {field}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AttestationError(f"{source}: {field}: not valid base64") from None


def parse(data: bytes, source: str) -> Envelope:
    """The envelope in `data`; AttestationError naming `source` and the field otherwise."""
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AttestationError(f"{source}: not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise AttestationError(f"{source}: not a DSSE envelope (expected an object)")
    payload_type = raw.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise AttestationError(
            f"{source}: payloadType {payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE}"
        )
    payload = _b64(raw.get("payload"), source, "payload")
    signatures = raw.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise AttestationError(f"{source}: signatures: expected at least one")
    parsed = []
    for index, entry in enumerate(signatures):
        if not isinstance(entry, dict) or not isinstance(entry.get("keyid"), str):
            raise AttestationError(f"{source}: signatures[{index}].keyid: expected a key id")
        parsed.append((entry["keyid"], _b64(entry.get("sig"), source, f"signatures[{index}].sig")))
    return Envelope(payload_type, payload, tuple(parsed))
