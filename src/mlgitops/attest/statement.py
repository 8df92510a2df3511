"""The in-toto Statement v1 with a SLSA Provenance v1 predicate that binds one release: what
was released (subjects: the served model file and the image, by digest) and from what (the
commit, data, params, policy, gate verdict, release record, SBOM and model-signing bundle).

Checked with in-toto-attestation's Statement.validate (the in-toto Statement v1 rules) before it
is signed, and again when it is verified.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from mlgitops.attest.facts import ReleaseFacts, sha256
from mlgitops.errors import AttestationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:mlgitops:release:v1"
DEFAULT_BUILDER = "urn:mlgitops:attest:local"

# Names of the resolved dependencies verify looks up.
DEP_COMMIT = "git-commit"
DEP_DATA_DVC = "data.dvc"
DEP_DATA = "data"
DEP_PARAMS = "params.yaml"
DEP_DVC_LOCK = "dvc.lock"
DEP_RELEASE = "release-record"
DEP_GATE = "gate-record"
DEP_POLICY = "gate-policy"
DEP_SBOM = "sbom"
DEP_MODEL_SIGNATURE = "model-signing-bundle"
SHIPPED_PREFIX = "model-store/"


def validate_statement(statement: dict[str, Any], source: str) -> None:
    """in-toto-attestation's own Statement v1 checks, plus the predicate type we sign."""
    from in_toto_attestation.v1.statement import Statement
    from in_toto_attestation.v1.statement_pb2 import Statement as StatementProto

    try:
        proto = json_format.ParseDict(statement, StatementProto())
        Statement.copy_from_pb(proto).validate()
    except (json_format.ParseError, ValueError) as error:
        raise AttestationError(f"{source}: not an in-toto Statement v1: {error}") from None
    if statement.get("predicateType") != SLSA_PROVENANCE:
        raise AttestationError(
            f"{source}: predicateType {statement.get('predicateType')!r}, "
            f"expected {SLSA_PROVENANCE}"
        )


def build_statement(
    facts: ReleaseFacts,
    *,
    image_digest: str,
    sbom: tuple[str, str],
    model_signature: tuple[str, str],
    signed_at: str,
    builder_id: str,
) -> dict[str, Any]:
    """The statement; `sbom` and `model_signature` are (repository path, sha256)."""
    release = facts.release
    image_repository, _, image_tag = release.image.rpartition(":")

    def dep(name: str, digest: dict[str, str], **extra: Any) -> dict[str, Any]:
        return {"name": name, "digest": digest, **extra}

    dependencies = [
        dep(DEP_COMMIT, {"gitCommit": facts.commit}, uri=f"git+commit:{facts.commit}"),
        dep(DEP_DATA_DVC, {"md5": facts.data_dvc_md5}, uri="data.dvc"),
        dep(DEP_DATA, {"md5": release.data_hash.removeprefix("md5:")}),
        dep(
            DEP_PARAMS,
            {"sha256": _sha(facts.params_file.data)},
            uri=facts.params_file.path,
            annotations={"params_hash": release.params_hash},
        ),
        dep(DEP_DVC_LOCK, {"sha256": _sha(facts.dvc_lock.data)}, uri=facts.dvc_lock.path),
        dep(DEP_RELEASE, {"sha256": _sha(facts.release_file.data)}, uri=facts.release_file.path),
        dep(
            DEP_GATE,
            {"sha256": _sha(facts.gate_file.data)},
            uri=facts.gate_file.path,
            annotations={"verdict": facts.verdict},
        ),
        dep(
            DEP_POLICY,
            {"sha256": facts.policy_sha256},
            annotations={"source": facts.policy_source},
        ),
        dep(DEP_SBOM, {"sha256": sbom[1]}, uri=sbom[0]),
        dep(DEP_MODEL_SIGNATURE, {"sha256": model_signature[1]}, uri=model_signature[0]),
        *(
            dep(SHIPPED_PREFIX + name, {"sha256": _sha(file.data)}, uri=file.path)
            for name, file in sorted(facts.shipped.items())
        ),
    ]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": facts.model.path, "digest": {"sha256": _sha(facts.model.data)}},
            {
                "name": image_repository,
                "digest": {"sha256": image_digest.removeprefix("sha256:")},
                "annotations": {"tag": image_tag},
            },
        ],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "revision": facts.commit,
                    "bento_tag": release.bento_tag,
                    "image": release.image,
                    "model_hash": release.model_hash,
                    "data_hash": release.data_hash,
                    "params_hash": release.params_hash,
                },
                "internalParameters": {
                    "gate_verdict": facts.verdict,
                    "policy_sha256": facts.policy_sha256,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {
                    "invocationId": f"{release.bento_tag}@{facts.commit}",
                    "startedOn": facts.commit_time,
                    "finishedOn": signed_at,
                },
            },
        },
    }
    validate_statement(statement, "the statement")
    return statement


def _sha(data: bytes) -> str:
    return sha256(data)


def canonical(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, indent=2, sort_keys=True).encode() + b"\n"


class Reader:
    """Field access on a signed statement: AttestationError naming the field when absent."""

    def __init__(self, statement: dict[str, Any], source: str) -> None:
        self.statement = statement
        self.source = source

    def field(self, *path: str | int) -> Any:
        value: Any = self.statement
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                where = ".".join(str(p) for p in path)
                raise AttestationError(f"{self.source}: {where}: missing") from None
        return value

    def dependency(self, name: str) -> dict[str, Any]:
        for entry in self.field("predicate", "buildDefinition", "resolvedDependencies"):
            if isinstance(entry, dict) and entry.get("name") == name:
                return entry
        raise AttestationError(f"{self.source}: resolvedDependencies: no {name!r} entry")

    def digest(self, name: str, algorithm: str) -> str:
        value = self.dependency(name).get("digest", {}).get(algorithm)
        if not isinstance(value, str):
            raise AttestationError(f"{self.source}: {name}.digest.{algorithm}: missing")
        return value

    def shipped(self) -> dict[str, str]:
        found = {}
        for entry in self.field("predicate", "buildDefinition", "resolvedDependencies"):
            name = entry.get("name", "") if isinstance(entry, dict) else ""
            if name.startswith(SHIPPED_PREFIX):
                found[name.removeprefix(SHIPPED_PREFIX)] = entry.get("digest", {}).get("sha256")
        return found
