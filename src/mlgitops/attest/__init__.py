"""Signed release attestations (docs/attest.md): `mlgitops attest` signs, `mlgitops verify` and
`mlgitops deploy` check, offline, against the trust root committed in Git (trust/keys.yaml).

An operator-side package: it reads releases from Git objects and the DVC cache, never the pod.
"""

from __future__ import annotations

# Where a release's attestation lies, beside the release record: attestations/<bento_version>/.
ATTESTATIONS_DIR = "attestations"
STATEMENT_FILE = "statement.dsse.json"
MODEL_SIGNATURE_FILE = "model.sig.json"
SBOM_FILE = "sbom.cdx.json"
DEFAULT_TRUST_ROOT = "trust/keys.yaml"
SIGNING_KEY_ENV = "MLGITOPS_SIGNING_KEY_FILE"


def attestation_dir(bento_version: str) -> str:
    """The repository path of one release's attestation files."""
    return f"{ATTESTATIONS_DIR}/{bento_version}"
