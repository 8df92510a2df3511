"""The trust root refuses what it cannot trust, with one line naming the file, key and field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mlgitops.attest.keys import (
    add_key,
    generate_key_pem,
    load_signing_key,
    load_trust_root,
    parse_trust_root,
    retire_key,
)
from mlgitops.errors import TrustRootError

JAN = datetime(2026, 1, 1, tzinfo=UTC)


def _public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _entry(key_id: str, pem: str, not_before: str = "2026-01-01T00:00:00Z", **extra: str) -> str:
    indented = "\n".join("      " + line for line in pem.strip().splitlines())
    more = "".join(f"\n    {k}: {v!r}" for k, v in extra.items())
    return (
        f"  - id: {key_id}\n    public_key: |\n{indented}\n    not_before: '{not_before}'{more}\n"
    )


def test_a_key_verifies_inside_its_period_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    _, public = generate_key_pem()
    add_key(path, "ci-a", public, JAN)
    retire_key(path, "ci-a", datetime(2026, 6, 1, tzinfo=UTC))

    [key] = load_trust_root(path).keys

    assert key.valid_at(datetime(2026, 3, 1, tzinfo=UTC))
    assert not key.valid_at(datetime(2025, 12, 31, tzinfo=UTC))
    assert not key.valid_at(datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC))
    with pytest.raises(TrustRootError, match="already ended"):
        retire_key(path, "ci-a", datetime(2026, 7, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _entry("rsa", _public(rsa.generate_private_key(65537, 2048))), "not an EC P-256"),
        (
            lambda: _entry("p384", _public(ec.generate_private_key(ec.SECP384R1()))),
            "not an EC P-256",
        ),
        (lambda: _entry("junk", "not a key"), "key junk: public_key: not a PEM public key"),
        (
            lambda: _entry(
                "naive", _public(ec.generate_private_key(ec.SECP256R1())), "2026-01-01T00:00:00"
            ),
            "key naive: not_before: '2026-01-01T00:00:00' has no UTC offset",
        ),
        (
            lambda: _entry(
                "backwards",
                _public(ec.generate_private_key(ec.SECP256R1())),
                not_after="2025-01-01T00:00:00Z",
            ),
            "not_after 2025-01-01T00:00:00Z is before not_before",
        ),
    ],
)
def test_an_untrustworthy_entry_is_named(make, message: str) -> None:
    with pytest.raises(TrustRootError, match=message):
        parse_trust_root("keys:\n" + make(), "trust/keys.yaml")


def test_the_same_key_or_id_twice_is_refused(tmp_path: Path) -> None:
    key = _public(ec.generate_private_key(ec.SECP256R1()))
    other = _public(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(TrustRootError, match="keys a and b are the same key"):
        parse_trust_root("keys:\n" + _entry("a", key) + _entry("b", key), "k.yaml")
    with pytest.raises(TrustRootError, match="key id a is listed twice"):
        parse_trust_root("keys:\n" + _entry("a", key) + _entry("a", other), "k.yaml")
    with pytest.raises(TrustRootError, match=r"k.yaml: keys.0.owner: Extra inputs"):
        parse_trust_root("keys:\n" + _entry("a", key, owner="x"), "k.yaml")


def test_a_signing_key_must_be_an_unencrypted_p256_pem(tmp_path: Path) -> None:
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TrustRootError, match="enc.pem: not an unencrypted PEM private key"):
        load_signing_key(encrypted)
    with pytest.raises(TrustRootError, match="missing.pem: cannot read the signing key"):
        load_signing_key(tmp_path / "missing.pem")
