"""`mlgitops attest`: sign the release of a commit (docs/attest.md).

A release step for the trusted CI job after the judge, never a pipeline stage: signatures are
not deterministic, and `dvc repro` must leave the tree clean. It writes three files under
attestations/<bento_version>/, to be committed beside the release record:

- sbom.cdx.json: the CycloneDX SBOM of the image (sbom.py);
- model.sig.json: the OpenSSF model-signing bundle over the files the model store ships;
- statement.dsse.json: the in-toto statement (SLSA provenance v1) binding the commit, data,
  params, policy, verdict, model, image digest and the two files above, in a DSSE envelope.

Why files in Git rather than registry attachments: `mlgitops verify` needs no registry and no
network, a `git revert` to an old release brings its attestation back with it (it never left),
and review sees them in the same pull request as the release.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlgitops.attest import (
    MODEL_SIGNATURE_FILE,
    SBOM_FILE,
    STATEMENT_FILE,
    attestation_dir,
    dsse,
    keys,
    modelsig,
    sbom,
    statement,
)
from mlgitops.attest.facts import ReleaseFacts, release_facts, sha256
from mlgitops.errors import ArtifactError, ImageDigestError, TrustRootError
from mlgitops.git import read_blobs, resolve_commit
from mlgitops.io import atomic_write_text

Log = Callable[[str], None]
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Attested:
    commit: str
    bento_tag: str
    directory: Path
    key_id: str
    signed_at: str
    image_digest: str
    files: tuple[Path, ...]


def signing_key_for(
    key_file: Path, trust_root: Path, now: datetime
) -> tuple[keys.SigningKey, keys.TrustedKey]:
    """The key, and its trust root entry, which must be valid now: a key the verifiers do not
    list, or outside its period, would sign something nobody accepts."""
    key = keys.load_signing_key(key_file)
    root = keys.load_trust_root(trust_root)
    trusted = root.by_fingerprint(keys.fingerprint(key.public))
    if trusted is None:
        raise TrustRootError(
            f"{key_file}: its public key is not in {trust_root} "
            "(add it first: `mlgitops trust add-key`)"
        )
    if not trusted.valid_at(now):
        raise TrustRootError(
            f"{key_file}: key {trusted.id} is valid {trusted.period()}, "
            f"not now ({keys.format_time(now)})"
        )
    return key, trusted


def image_digest_of(facts: ReleaseFacts, given: str | None, resolve: Callable[[str], str]) -> str:
    if given is not None:
        if not DIGEST.match(given):
            raise ImageDigestError(f"--image-digest {given!r}: expected sha256:<64 hex digits>")
        return given
    digest = resolve(facts.release.image)
    if not digest:
        raise ImageDigestError(
            f"cannot pin {facts.release.image} to a digest; push it first or give --image-digest"
        )
    return digest


def debian_inventory(dpkg_status: Path | None) -> tuple[list[sbom.DebianPackage], str, str]:
    """(packages, suite, source) of the image's base (see sbom.py for the two sources)."""
    from mlgitops.image.base import BaseRecipe

    recipe = BaseRecipe()
    if dpkg_status is not None:
        return sbom.read_dpkg_status(dpkg_status), recipe.suite, "image dpkg status"
    packages = [sbom.DebianPackage(name, None, None) for name in recipe.packages]
    return packages, recipe.suite, "base recipe (debootstrap minbase); versions not recorded"


def python_inventory(repo: Path, commit: str) -> list[sbom.PythonPin]:
    """The bento's pins, from the commit's requirements.lock."""
    from mlgitops.packaging.bento import pinned_requirements

    lock = read_blobs(repo, commit, ["requirements.lock"]).get("requirements.lock")
    if lock is None:
        raise ArtifactError(f"{commit[:12]}:requirements.lock: not found")
    with tempfile.TemporaryDirectory(prefix="mlgitops-lock-") as tmp:
        path = Path(tmp) / "requirements.lock"
        path.write_bytes(lock)
        requirements = pinned_requirements(path)
    return sbom.python_pins(requirements, lock.decode())


def attest(
    repo: Path,
    *,
    key_file: Path,
    trust_root: Path,
    rev: str = "HEAD",
    image_digest: str | None = None,
    resolve_digest: Callable[[str], str] | None = None,
    dpkg_status: Path | None = None,
    builder_id: str = statement.DEFAULT_BUILDER,
    replace: bool = False,
    now: datetime | None = None,
) -> Attested:
    """Sign the release at `rev` and write its attestation files into the working tree."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    key, trusted = signing_key_for(key_file, trust_root, moment)
    commit = resolve_commit(repo, rev)
    facts = release_facts(repo, commit, strict=True)
    directory = attestation_dir(facts.release.bento_version)
    target = repo / directory
    if target.exists() and not replace:
        raise ArtifactError(
            f"{directory}: the release {facts.release.bento_tag} is attested already "
            "(--replace signs it anew)"
        )
    digest = image_digest_of(facts, image_digest, resolve_digest or (lambda _: ""))
    debian, suite, debian_source = debian_inventory(dpkg_status)
    sbom_text = sbom.build_sbom(
        image=facts.release.image,
        image_digest=digest,
        bento_tag=facts.release.bento_tag,
        timestamp=keys.parse_time(facts.commit_time, f"{commit[:12]} commit time"),
        python=python_inventory(repo, commit),
        debian=debian,
        debian_suite=suite,
        debian_source=debian_source,
    )
    bundle = modelsig.sign_bundle(facts.shipped, key_file)
    sbom_path, bundle_path = f"{directory}/{SBOM_FILE}", f"{directory}/{MODEL_SIGNATURE_FILE}"
    signed_at = keys.format_time(moment)
    document = statement.build_statement(
        facts,
        image_digest=digest,
        sbom=(sbom_path, sha256(sbom_text.encode())),
        model_signature=(bundle_path, sha256(bundle)),
        signed_at=signed_at,
        builder_id=builder_id,
    )
    envelope = dsse.sign(statement.canonical(document), key, trusted.id)
    written = []
    for name, text in (
        (SBOM_FILE, sbom_text),
        (MODEL_SIGNATURE_FILE, bundle.decode()),
        (STATEMENT_FILE, envelope.to_json()),  # last: its presence means the set is complete
    ):
        atomic_write_text(target / name, text)
        written.append(target / name)
    return Attested(
        commit=commit,
        bento_tag=facts.release.bento_tag,
        directory=target,
        key_id=trusted.id,
        signed_at=signed_at,
        image_digest=digest,
        files=tuple(written),
    )
