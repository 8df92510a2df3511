"""`mlgitops attest` then `mlgitops verify` / `mlgitops deploy`: a signed release verifies and
deploys; one flipped byte in the model, the SBOM or the statement is named and refused; a key
rotation keeps an old release verifiable, so a revert to it deploys."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlgitops.attest import MODEL_SIGNATURE_FILE, SBOM_FILE, STATEMENT_FILE
from mlgitops.attest.keys import retire_key
from mlgitops.attest.sbom import validate_sbom
from mlgitops.attest.statement import validate_statement
from mlgitops.attest.verify import verify
from mlgitops.errors import AttestationError, AttestationMissingError
from tests.mlgitops.attest.conftest import MODEL, ReleaseRepo, image_digest
from tests.mlgitops.deploy.helpers import deployed_image, history_entries
from tests.support.fake_kube import FakeKubeServer
from tests.support.registry import local_registry, push_test_image

JAN = datetime(2026, 1, 10, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def commit_file(repo: ReleaseRepo, path: Path, message: str) -> None:
    repo.git("add", str(path.relative_to(repo.path)))
    repo.git("commit", "-q", "-m", message)


def test_a_signed_release_verifies_and_binds_what_was_released(
    release_repo: ReleaseRepo, make_key, cli
) -> None:
    key = make_key("ci-2026a")
    record = release_repo.commit_release("A")
    release_commit = release_repo.git("rev-parse", "HEAD")
    done = release_repo.sign(key, "A", now=JAN)

    result = cli("verify")

    assert result.code == 0, result.err
    assert f"verified {record.bento_tag}" in result.out
    assert "signed by key ci-2026a at 2026-01-10T00:00:00Z" in result.out
    assert f"{record.image}@{image_digest('A')}" in result.out
    # What the statement says, read back from the signed envelope.
    envelope = json.loads((done.directory / STATEMENT_FILE).read_text())
    assert envelope["signatures"][0]["keyid"] == "ci-2026a"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    validate_statement(statement, "statement")  # in-toto-attestation's Statement v1 checks
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0] == {
        "name": MODEL,
        "digest": {"sha256": record.model_hash.removeprefix("sha256:")},
    }
    assert statement["subject"][1]["digest"]["sha256"] == image_digest("A")[7:]
    build = statement["predicate"]["buildDefinition"]
    assert build["externalParameters"]["revision"] == release_commit
    assert build["externalParameters"]["params_hash"] == record.params_hash
    assert build["internalParameters"]["gate_verdict"] == "PASS"
    names = {dep["name"] for dep in build["resolvedDependencies"]}
    assert {"data.dvc", "gate-policy", "sbom", "model-signing-bundle", "dvc.lock"} <= names


def test_the_sbom_validates_against_cyclonedx_and_lists_the_image_contents(
    release_repo: ReleaseRepo, make_key
) -> None:
    key = make_key("ci")
    release_repo.commit_release("A")
    done = release_repo.sign(key, "A", now=JAN)

    text = (done.directory / SBOM_FILE).read_text()

    assert validate_sbom(text) is None
    sbom = json.loads(text)
    assert sbom["specVersion"] == "1.6"
    purls = {c["purl"] for c in sbom["components"]}
    assert any(p.startswith("pkg:pypi/scikit-learn@") for p in purls)
    assert any(p.startswith("pkg:pypi/bentoml@") for p in purls)
    assert "pkg:deb/debian/python3.11?distro=debian-bookworm" in purls
    sklearn = next(c for c in sbom["components"] if c["name"] == "scikit-learn")
    assert sklearn["hashes"]
    assert all(h["alg"] == "SHA-256" for h in sklearn["hashes"])
    assert sbom["metadata"]["component"]["hashes"][0]["content"] == image_digest("A")[7:]
    # Deterministic: signing the release commit again, later, gives the same SBOM bytes (the
    # signatures differ).
    from mlgitops.attest.attest import attest

    attest(
        release_repo.path,
        rev="HEAD~1",
        key_file=key.private,
        trust_root=release_repo.trust_root,
        image_digest=image_digest("A"),
        replace=True,
        now=MAR,
    )
    assert (done.directory / SBOM_FILE).read_text() == text
    # A broken SBOM is caught by the schema.
    broken = json.loads(text)
    broken["components"][0]["type"] = "not-a-type"
    assert validate_sbom(json.dumps(broken)) is not None


@pytest.mark.parametrize(
    "target",
    ["model", SBOM_FILE, STATEMENT_FILE, MODEL_SIGNATURE_FILE],
)
def test_one_flipped_byte_is_named_and_the_deploy_refused(
    release_repo: ReleaseRepo, make_key, cli, cluster: FakeKubeServer, target: str
) -> None:
    key = make_key("ci")
    release_repo.commit_release("A")
    done = release_repo.sign(key, "A", now=JAN)
    if target == "model":
        # The bytes a deploy ships come from the DVC cache, by dvc.lock's md5.
        path = release_repo.cache_file(MODEL)
        flip(path, 5)
        named = str(path)
    else:
        path = done.directory / target
        # Inside the base64 payload for the statement: a change to what was signed.
        flip(path, 40 if target == STATEMENT_FILE else len(path.read_bytes()) // 2)
        commit_file(release_repo, path, f"tamper with {target}")
        named = f"attestations/{done.directory.name}/{target}"

    result = cli("verify")

    assert result.code in (35,), result.err
    assert named in result.err
    assert len(result.err.strip().splitlines()) == 1

    deploy = cli("deploy", "--env", "staging", "--kubeconfig", str(cluster.kubeconfig_path))

    assert deploy.code == 35, deploy.err
    assert "refusing to deploy" in deploy.err
    assert named in deploy.err
    assert cluster.get_object("deployments", "fraud-detector", "mlgitops-staging") is None
    assert history_entries(cluster) == []


def test_a_release_without_attestation_or_by_an_unknown_key_is_refused(
    release_repo: ReleaseRepo, make_key, cli, cluster: FakeKubeServer, tmp_path: Path
) -> None:
    make_key("ci")
    release_repo.commit_release("A")
    kubeconfig = str(cluster.kubeconfig_path)

    missing = cli("verify")
    assert missing.code == 36
    assert "statement.dsse.json" in missing.err
    assert "has no attestation" in missing.err

    refused = cli("deploy", "--env", "staging", "--kubeconfig", kubeconfig)
    assert refused.code == 36, refused.err

    forced = cli("deploy", "--env", "staging", "--kubeconfig", kubeconfig, "--allow-unverified")
    assert forced.code == 0, forced.err
    [entry] = history_entries(cluster)
    assert (entry["verified"], entry["allow_unverified"]) == (False, True)

    # Signed with a key the verifier's trust root does not list.
    from mlgitops.attest.keys import add_key, generate_key_pem
    from tests.mlgitops.attest.conftest import Key

    private, public = generate_key_pem()
    stranger = Key("stranger", tmp_path / "s.pem", tmp_path / "s.pub")
    stranger.private.write_bytes(private)
    other_root = tmp_path / "other" / "keys.yaml"
    add_key(other_root, "stranger", public, JAN)
    from mlgitops.attest.attest import attest

    attest(
        release_repo.path,
        key_file=stranger.private,
        trust_root=other_root,
        image_digest=image_digest("A"),
        now=JAN,
    )
    release_repo.git("add", "attestations")
    release_repo.git("commit", "-q", "-m", "attest with a stranger's key")
    unknown = cli("verify")
    assert unknown.code == 36
    assert "signed by key stranger" in unknown.err
    assert "does not list" in unknown.err


def test_key_rotation_keeps_an_old_release_deployable_after_a_revert(
    release_repo: ReleaseRepo, make_key, cli, cluster: FakeKubeServer
) -> None:
    kubeconfig = str(cluster.kubeconfig_path)
    key_a = make_key("ci-a")
    one = release_repo.commit_release("A")
    release_repo.sign(key_a, "A", now=JAN)
    cluster.registry.push(one.image, image_digest("A"))
    # Rotation: A ends in February, B starts in March.
    retire_key(release_repo.trust_root, "ci-a", datetime(2026, 2, 1, tzinfo=UTC))
    key_b = make_key("ci-b", not_before=MAR)
    two = release_repo.commit_release("B")
    release_commit_two = release_repo.git("rev-parse", "HEAD")
    release_repo.sign(key_b, "B", now=APR)
    cluster.registry.push(two.image, image_digest("B"))
    assert cli("deploy", "--env", "staging", "--kubeconfig", kubeconfig).code == 0

    # A key used outside its validity is refused: A cannot sign any more.
    from mlgitops.attest.attest import attest
    from mlgitops.errors import TrustRootError

    with pytest.raises(TrustRootError, match="ci-a is valid 2026-01-01T00:00:00Z .. 2026-02-01"):
        attest(
            release_repo.path,
            key_file=key_a.private,
            trust_root=release_repo.trust_root,
            image_digest=image_digest("B"),
            replace=True,
            now=APR,
        )

    # Revert release 2 (and its attestation commit): release 1 is back, signed by A in January.
    release_repo.git("revert", "--no-edit", "HEAD", release_commit_two)
    verified = cli("verify")
    assert verified.code == 0, verified.err
    assert f"verified {one.bento_tag}" in verified.out
    assert "key ci-a" in verified.out

    deployed = cli("deploy", "--env", "staging", "--kubeconfig", kubeconfig)

    assert deployed.code == 0, deployed.err
    assert deployed_image(cluster) == f"{one.image}@{image_digest('A')}"
    last = history_entries(cluster)[-1]
    assert (last["verified"], last["allow_unverified"], last["image_digest"]) == (
        True,
        False,
        image_digest("A"),
    )


def test_after_a_rotation_the_last_three_releases_still_verify_and_deploy(
    release_repo: ReleaseRepo, make_key, cli, cluster: FakeKubeServer
) -> None:
    """Item 4: rolling back to any of the three releases before a rotation still verifies."""
    kubeconfig = str(cluster.kubeconfig_path)
    key_a = make_key("ci-a")
    signed: dict[str, tuple[str, str]] = {}  # model -> (attested commit, image)
    for day, model in enumerate(("A", "B", "C"), start=1):
        record = release_repo.commit_release(model)
        release_repo.sign(key_a, model, now=JAN.replace(day=10 + day))
        cluster.registry.push(record.image, image_digest(model))
        signed[model] = (release_repo.git("rev-parse", "HEAD").strip(), record.image)
    retire_key(release_repo.trust_root, "ci-a", datetime(2026, 2, 1, tzinfo=UTC))
    key_b = make_key("ci-b", not_before=MAR)
    four = release_repo.commit_release("D")
    release_repo.sign(key_b, "D", now=APR)
    cluster.registry.push(four.image, image_digest("D"))
    assert cli("deploy", "--env", "staging", "--kubeconfig", kubeconfig).code == 0

    for model, (commit, image) in signed.items():
        verified = cli("verify", "--rev", commit)
        assert verified.code == 0, (model, verified.err)
        assert "key ci-a" in verified.out
        deployed = cli("deploy", "--env", "staging", "--rev", commit, "--kubeconfig", kubeconfig)
        assert deployed.code == 0, (model, deployed.err)
        assert deployed_image(cluster) == f"{image}@{image_digest(model)}"
        assert history_entries(cluster)[-1]["verified"] is True


def test_a_signature_outside_the_keys_validity_does_not_verify(
    release_repo: ReleaseRepo, make_key
) -> None:
    key = make_key("ci", not_before=JAN)
    release_repo.commit_release("A")
    release_repo.sign(key, "A", now=MAR)
    # The key is later found to have been compromised since February: end it before the
    # signature; what it signed after that no longer verifies.
    retire_key(release_repo.trust_root, "ci", datetime(2026, 2, 1, tzinfo=UTC))

    with pytest.raises(AttestationError, match="signed at 2026-03-01T00:00:00Z by key ci"):
        verify(release_repo.path, trust_root=release_repo.trust_root)


def test_attest_asks_the_registry_and_a_re_pushed_tag_is_refused(
    release_repo: ReleaseRepo, make_key, cli, cluster: FakeKubeServer, tmp_path: Path
) -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (apt-get install -y docker-registry)")
    key = make_key("ci")
    with local_registry(tmp_path / "registry") as registry:
        repository = f"{registry.host}/mlgitops/fraud-detector"
        record = release_repo.commit_release("A", repository)
        tag = record.bento_version
        pushed = push_test_image(registry, "mlgitops/fraud-detector", tag, "model A")

        signed = cli("attest", "--key", str(key.private), "--no-registry-tls-verify")

        assert signed.code == 0, signed.err
        assert f"image {pushed.digest[:19]}" in signed.out
        release_repo.git("add", "attestations")
        release_repo.git("commit", "-q", "-m", "attest")
        # The tag now names other bytes than were signed.
        evil = push_test_image(registry, "mlgitops/fraud-detector", tag, "model A, backdoored")
        cluster.registry.push(evil.reference, evil.digest, evil.config)

        result = cli(
            "deploy",
            "--env",
            "staging",
            "--kubeconfig",
            str(cluster.kubeconfig_path),
            "--no-registry-tls-verify",
        )

    assert result.code == 35, result.err
    assert f"is {evil.digest}" in result.err
    assert f"signed {pushed.digest}" in result.err
    assert history_entries(cluster) == []


def test_verify_does_not_trust_the_revisions_own_keys(
    release_repo: ReleaseRepo, make_key, tmp_path: Path
) -> None:
    key = make_key("ci")
    release_repo.commit_release("A")
    release_repo.sign(key, "A", now=JAN)
    empty = tmp_path / "empty.yaml"
    empty.write_text("keys: []\n")

    with pytest.raises(AttestationMissingError, match="does not list"):
        verify(release_repo.path, trust_root=empty)


def signed_a_model(signed) -> str:
    envelope = json.loads((signed.directory / STATEMENT_FILE).read_text())
    return json.loads(base64.b64decode(envelope["payload"]))["subject"][0]["digest"]["sha256"]


def test_another_releases_attestation_does_not_verify_this_one(
    release_repo: ReleaseRepo, make_key, cli
) -> None:
    key = make_key("ci")
    release_repo.commit_release("A")
    signed_a = release_repo.sign(key, "A", now=JAN)
    record_b = release_repo.commit_release("B")
    # A validly signed attestation, copied under B's version: every byte is A's, signed.
    target = release_repo.path / "attestations" / record_b.bento_version
    shutil.copytree(signed_a.directory, target)
    release_repo.git("add", "attestations")
    release_repo.git("commit", "-q", "-m", "copy A's attestation for B")

    result = cli("verify")

    assert result.code == 35
    # The first hash that differs: the model B's release pins is not the model A's signed.
    assert result.err.startswith(f"error: {MODEL} (DVC cache ")
    assert f"signed {signed_a_model(signed_a)}" in result.err
