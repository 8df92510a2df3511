"""`mlgitops verify`: check a revision's release against its signed attestation, offline.

The trust root is the verifier's own (by default trust/keys.yaml of the working tree it runs in,
not the revision's: an old revision cannot bring its own keys, and a release signed before a
rotation still verifies with the rotated-out key kept there with its validity period).

Checks, each failing with one line naming the file and field: the DSSE signature by a listed key
valid at the signing time; the in-toto Statement v1 shape; the attested commit is in the
revision's history; every hash in the statement against the files at the revision (release
record, served model and every model store file from Git or the DVC cache, data.dvc, the data
hash, params.yaml, dvc.lock, the gate record with verdict PASS, the gate policy, the SBOM, the
model-signing bundle), and the model-signing bundle itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlgitops.attest import (
    MODEL_SIGNATURE_FILE,
    SBOM_FILE,
    STATEMENT_FILE,
    attestation_dir,
    dsse,
    keys,
    modelsig,
    statement,
)
from mlgitops.attest.facts import release_facts, sha256
from mlgitops.errors import AttestationError, AttestationMissingError, GitError
from mlgitops.git import read_blobs, resolve_commit, run
from mlgitops.revision import find_release_at, params_at, release_path


@dataclass(frozen=True)
class Verified:
    commit: str
    attested_commit: str
    bento_tag: str
    image: str
    image_digest: str  # sha256:<hex>
    key_id: str
    signed_at: str
    directory: str


def _is_ancestor(repo: Path, ancestor: str, commit: str) -> bool:
    try:
        run(repo, "merge-base", "--is-ancestor", ancestor, commit)
    except GitError:
        return False
    return True


def _same(actual: str, expected: object, what: str, source: str) -> None:
    if actual != expected:
        raise AttestationError(f"{what}: {actual[:80]}, but {source} signed {str(expected)[:80]}")


def verify(repo: Path, rev: str = "HEAD", *, trust_root: Path) -> Verified:
    commit = resolve_commit(repo, rev)
    params = params_at(repo, commit)
    release = find_release_at(repo, commit, release_path(params, commit))
    if release is None:
        raise AttestationMissingError(f"{rev} ({commit[:12]}) has no release record to verify")
    directory = attestation_dir(release.bento_version)
    statement_path = f"{directory}/{STATEMENT_FILE}"
    files = read_blobs(
        repo,
        commit,
        [statement_path, f"{directory}/{SBOM_FILE}", f"{directory}/{MODEL_SIGNATURE_FILE}"],
    )
    if statement_path not in files:
        raise AttestationMissingError(
            f"{statement_path}: release {release.bento_tag} at {rev} ({commit[:12]}) has no "
            "attestation (the trusted CI job runs `mlgitops attest`)"
        )
    root = keys.load_trust_root(trust_root)

    # The signature, before anything in the payload is believed.
    envelope = dsse.parse(files[statement_path], statement_path)
    known = [(root.get(keyid), keyid, sig) for keyid, sig in envelope.signatures]
    listed = [(key, sig) for key, _, sig in known if key is not None]
    if not listed:
        ids = ", ".join(keyid or "(none)" for _, keyid, _ in known)
        raise AttestationMissingError(
            f"{statement_path}: signed by key {ids}, which {trust_root} does not list"
        )
    message = dsse.pae(envelope.payload_type, envelope.payload)
    signer = next((key for key, sig in listed if key.verify(sig, message)), None)
    if signer is None:
        raise AttestationError(
            f"{statement_path}: the signature by key {listed[0][0].id} does not verify "
            "(the statement was changed after signing, or signed by another key)"
        )
    try:
        document = json.loads(envelope.payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AttestationError(f"{statement_path}: payload: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise AttestationError(f"{statement_path}: payload: not a JSON object")
    statement.validate_statement(document, statement_path)
    reader = statement.Reader(document, statement_path)
    signed_at_text = reader.field("predicate", "runDetails", "metadata", "finishedOn")
    signed_at = keys.parse_time(str(signed_at_text), f"{statement_path}: finishedOn")
    if not signer.valid_at(signed_at):
        raise AttestationError(
            f"{statement_path}: signed at {signed_at_text} by key {signer.id}, which is valid "
            f"only {signer.period()} ({trust_root})"
        )

    # What was signed is what the revision holds.
    attested = reader.digest(statement.DEP_COMMIT, "gitCommit")
    if not _is_ancestor(repo, attested, commit):
        raise AttestationError(
            f"{statement_path}: attests commit {attested[:12]}, which is not in the history "
            f"of {rev} ({commit[:12]})"
        )
    facts = release_facts(repo, commit, strict=False)
    signed = f"{statement_path}"
    model_subject = reader.field("subject", 0)
    _same(facts.model.path, model_subject.get("name"), f"{statement_path}: subject[0].name", signed)
    _same(
        sha256(facts.model.data),
        model_subject.get("digest", {}).get("sha256"),
        f"{facts.model.where}: sha256",
        signed,
    )
    _same(release.model_hash, "sha256:" + sha256(facts.model.data), "release model_hash", signed)
    shipped = reader.shipped()
    _same(",".join(sorted(facts.shipped)), ",".join(sorted(shipped)), "model store files", signed)
    for name, file in sorted(facts.shipped.items()):
        _same(sha256(file.data), shipped[name], f"{file.where}: sha256", signed)
    checks = [
        (facts.release_file, statement.DEP_RELEASE),
        (facts.params_file, statement.DEP_PARAMS),
        (facts.dvc_lock, statement.DEP_DVC_LOCK),
        (facts.gate_file, statement.DEP_GATE),
    ]
    for file, name in checks:
        _same(sha256(file.data), reader.digest(name, "sha256"), f"{file.where}: sha256", signed)
    _same(facts.data_dvc_md5, reader.digest(statement.DEP_DATA_DVC, "md5"), "data.dvc: md5", signed)
    _same(
        release.data_hash.removeprefix("md5:"),
        reader.digest(statement.DEP_DATA, "md5"),
        f"{facts.release_file.path}: data_hash",
        signed,
    )
    external = reader.field("predicate", "buildDefinition", "externalParameters")
    _same(release.params_hash, external.get("params_hash"), "params_hash", signed)
    _same(release.bento_tag, external.get("bento_tag"), "bento_tag", signed)
    _same(facts.verdict, "PASS", f"{facts.gate_file.path}: verdict", "the gate")
    internal = reader.field("predicate", "buildDefinition", "internalParameters")
    _same(internal.get("gate_verdict", ""), "PASS", f"{statement_path}: gate_verdict", "policy")
    _same(
        facts.policy_sha256,
        reader.digest(statement.DEP_POLICY, "sha256"),
        f"gate policy ({facts.policy_source}): sha256",
        signed,
    )

    # The SBOM and the model-signing bundle, by their hashes in the statement.
    for name, dep in (
        (SBOM_FILE, statement.DEP_SBOM),
        (MODEL_SIGNATURE_FILE, statement.DEP_MODEL_SIGNATURE),
    ):
        path = f"{directory}/{name}"
        if path not in files:
            raise AttestationError(f"{path}: missing (the statement signs it)")
        _same(sha256(files[path]), reader.digest(dep, "sha256"), f"{path}: sha256", signed)
    modelsig.verify_bundle(
        facts.shipped,
        files[f"{directory}/{MODEL_SIGNATURE_FILE}"],
        signer,
        f"{directory}/{MODEL_SIGNATURE_FILE}",
    )

    image_subject = reader.field("subject", 1)
    image = f"{image_subject.get('name')}:{(image_subject.get('annotations') or {}).get('tag')}"
    _same(release.image, image, f"{statement_path}: subject[1] (image)", signed)
    image_sha = image_subject.get("digest", {}).get("sha256")
    if not isinstance(image_sha, str):
        raise AttestationError(f"{statement_path}: subject[1].digest.sha256: missing")
    return Verified(
        commit=commit,
        attested_commit=attested,
        bento_tag=release.bento_tag,
        image=release.image,
        image_digest=f"sha256:{image_sha}",
        key_id=signer.id,
        signed_at=str(signed_at_text),
        directory=directory,
    )
