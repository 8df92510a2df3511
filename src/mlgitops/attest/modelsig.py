"""OpenSSF model-signing bundles (PyPI `model-signing`, a Sigstore bundle holding a DSSE
envelope over every file's sha256) over the files a bento's model store entry ships, signed with
the release key (EC P-256, the only key kind model-signing's key signer takes).

The files are laid out in a temporary directory under the names the bento gives them, so the
bundle says what the pod loads, and verify rebuilds the same directory from the revision.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlgitops.attest.facts import RevisionFile
from mlgitops.attest.keys import TrustedKey, public_pem
from mlgitops.errors import AttestationError

MODEL_DIR = "model"


def _lay_out(files: dict[str, RevisionFile], root: Path) -> Path:
    model = root / MODEL_DIR
    model.mkdir()
    for name, file in sorted(files.items()):
        (model / name).write_bytes(file.data)
    return model


def sign_bundle(files: dict[str, RevisionFile], private_key_file: Path) -> bytes:
    import model_signing

    with tempfile.TemporaryDirectory(prefix="mlgitops-modelsig-") as tmp:
        model = _lay_out(files, Path(tmp))
        bundle = Path(tmp) / "bundle.json"
        signer = model_signing.signing.Config().use_elliptic_key_signer(
            private_key=private_key_file
        )
        signer.sign(model, bundle)
        return bundle.read_bytes()


def verify_bundle(
    files: dict[str, RevisionFile], bundle: bytes, key: TrustedKey, source: str
) -> None:
    """AttestationError naming `source` and the first file whose hash or signature disagrees."""
    import model_signing

    with tempfile.TemporaryDirectory(prefix="mlgitops-modelsig-") as tmp:
        model = _lay_out(files, Path(tmp))
        (Path(tmp) / "bundle.json").write_bytes(bundle)
        (Path(tmp) / "key.pub").write_text(public_pem(key.key), encoding="utf-8")
        verifier = model_signing.verifying.Config().use_elliptic_key_verifier(
            public_key=Path(tmp) / "key.pub"
        )
        try:
            verifier.verify(model, Path(tmp) / "bundle.json")
        except Exception as error:  # model-signing raises ValueError and protobuf/json errors
            raise AttestationError(
                f"{source}: the model-signing bundle does not verify with key {key.id}: "
                f"{_first_line(error, files)}"
            ) from None


def _first_line(error: Exception, files: dict[str, RevisionFile]) -> str:
    text = str(error)
    for name, file in sorted(files.items()):
        if f"'{name}'" in text:
            return f"hash mismatch for {name} ({file.where})"
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
