"""The trust root (trust/keys.yaml) and signing keys: ECDSA P-256 with SHA-256 only.

P-256 because OpenSSF model-signing signs with EC P-256 keys, and one key signs both the DSSE
statement and the model-signing bundle. Each public key has an id and a validity period; a key
verifies signatures made inside its period, so a rotated-out key (its `not_after` set, kept in
the file) still verifies the releases it signed while it was in use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from mlgitops.errors import TrustRootError, validation_line
from mlgitops.io import atomic_write_text
from mlgitops.model_base import FrozenModel

ALGORITHM = "ecdsa-p256-sha256"


def parse_time(value: str, source: str) -> datetime:
    """An RFC 3339 time with its offset; naive times are refused (ambiguous)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TrustRootError(f"{source}: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise TrustRootError(f"{source}: {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _p256_public(pem: bytes, source: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise TrustRootError(f"{source}: not a PEM public key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise TrustRootError(f"{source}: not an EC P-256 public key (the only kind accepted)")
    return key


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the DER SubjectPublicKeyInfo: what names a key whatever its id says."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class KeyEntry(FrozenModel):
    """One trusted public key of trust/keys.yaml."""

    id: str
    algorithm: str = ALGORITHM
    public_key: str  # PEM SubjectPublicKeyInfo
    not_before: str
    not_after: str | None = None  # None: still in use
    comment: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not value or not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("expected letters, digits, '-', '_' or '.'")
        return value


@dataclass(frozen=True)
class TrustedKey:
    id: str
    key: ec.EllipticCurvePublicKey
    not_before: datetime
    not_after: datetime | None
    entry: KeyEntry

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment and (self.not_after is None or moment <= self.not_after)

    def period(self) -> str:
        end = format_time(self.not_after) if self.not_after else "open"
        return f"{format_time(self.not_before)} .. {end}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


class TrustRootFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = []


@dataclass(frozen=True)
class TrustRoot:
    path: Path
    keys: tuple[TrustedKey, ...]

    def get(self, key_id: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def by_fingerprint(self, print_: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.fingerprint == print_), None)


def _trusted(entry: KeyEntry, source: str) -> TrustedKey:
    where = f"{source}: key {entry.id}"
    if entry.algorithm != ALGORITHM:
        raise TrustRootError(f"{where}: algorithm {entry.algorithm!r}, expected {ALGORITHM}")
    key = _p256_public(entry.public_key.encode(), f"{where}: public_key")
    start = parse_time(entry.not_before, f"{where}: not_before")
    end = parse_time(entry.not_after, f"{where}: not_after") if entry.not_after else None
    if end is not None and end < start:
        raise TrustRootError(f"{where}: not_after {entry.not_after} is before not_before")
    return TrustedKey(entry.id, key, start, end, entry)


def parse_trust_root(text: str, source: str) -> TrustRoot:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0]
        raise TrustRootError(f"{source}: not valid YAML: {first}") from None
    try:
        model = TrustRootFile.model_validate(raw or {})
    except ValidationError as error:
        raise TrustRootError(f"{source}: {validation_line(error)}") from None
    keys = tuple(_trusted(entry, source) for entry in model.keys)
    for index, key in enumerate(keys):
        for other in keys[:index]:
            if key.id == other.id:
                raise TrustRootError(f"{source}: key id {key.id} is listed twice")
            if key.fingerprint == other.fingerprint:
                raise TrustRootError(f"{source}: keys {other.id} and {key.id} are the same key")
    return TrustRoot(Path(source), keys)


def load_trust_root(path: Path) -> TrustRoot:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrustRootError(
            f"{path}: no trust root (add a key: `mlgitops trust add-key`, docs/attest.md)"
        ) from None
    except OSError as error:
        raise TrustRootError(f"{path}: cannot read the trust root ({error.strerror})") from None
    return parse_trust_root(text, str(path))


class _BlockDumper(yaml.SafeDumper):
    """PEM keys as literal blocks, readable in review."""


_BlockDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def _write(path: Path, entries: list[KeyEntry]) -> None:
    header = (
        "# The trust root of release attestations (docs/attest.md): public keys whose signatures\n"
        "# `mlgitops verify` and `mlgitops deploy` accept, each for signatures made in its\n"
        "# validity period. Keep rotated-out keys (with not_after set): old releases need them.\n"
        "# Add the release job's key with `mlgitops trust add-key`; CODEOWNERS review every\n"
        "# change.\n"
    )
    body = yaml.dump(
        {"keys": [e.model_dump() for e in entries]}, Dumper=_BlockDumper, sort_keys=False
    )
    atomic_write_text(Path(path), header + body)


def add_key(
    path: Path, key_id: str, public_key_pem: bytes, not_before: datetime, comment: str = ""
) -> TrustedKey:
    """Append a public key to the trust root (made when absent); the file is checked after."""
    current = load_trust_root(path).keys if Path(path).exists() else ()
    key = _p256_public(public_key_pem, f"key {key_id}")
    entry = KeyEntry(
        id=key_id, public_key=public_pem(key), not_before=format_time(not_before), comment=comment
    )
    entries = [k.entry for k in current] + [entry]
    parse_trust_root(yaml.safe_dump({"keys": [e.model_dump() for e in entries]}), str(path))
    _write(path, entries)
    return _trusted(entry, str(path))


def retire_key(path: Path, key_id: str, not_after: datetime) -> TrustedKey:
    """End a key's validity at `not_after`; it keeps verifying what it signed before."""
    root = load_trust_root(path)
    found = root.get(key_id)
    if found is None:
        raise TrustRootError(f"{path}: no key {key_id}")
    if found.not_after is not None:
        raise TrustRootError(f"{path}: key {key_id} already ended at {found.entry.not_after}")
    entries = [
        k.entry.model_copy(update={"not_after": format_time(not_after)})
        if k.id == key_id
        else k.entry
        for k in root.keys
    ]
    parse_trust_root(yaml.safe_dump({"keys": [e.model_dump() for e in entries]}), str(path))
    _write(path, entries)
    updated = load_trust_root(path).get(key_id)
    assert updated is not None
    return updated


@dataclass(frozen=True)
class SigningKey:
    """A private EC P-256 key read from a PEM file (held by CI; never in Git)."""

    path: Path
    key: ec.EllipticCurvePrivateKey

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message, ec.ECDSA(hashes.SHA256()))


def load_signing_key(path: Path) -> SigningKey:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TrustRootError(f"{path}: cannot read the signing key ({error.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TrustRootError(f"{path}: not an unencrypted PEM private key ({first})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise TrustRootError(f"{path}: not an EC P-256 private key (the only kind accepted)")
    return SigningKey(Path(path), key)


def generate_key_pem() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new P-256 key: for tests and `mlgitops trust new-key`."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private, public_pem(key.public_key()).encode()
