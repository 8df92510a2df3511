"""Deploys pin digests: a real registry (Debian's docker-registry on 127.0.0.1) says which bytes a
tag names, the fake API server's nodes pull from the same view of it, and the pods report what
they pulled."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlgitops.image.run import free_port
from tests.mlgitops.deploy.helpers import (
    DEPLOYMENT,
    STAGING_NS,
    GitOpsRepo,
    deployed_image,
    history_entries,
    release_for,
    running_digests,
)
from tests.support.fake_kube import FakeKubeServer
from tests.support.registry import LocalRegistry, PushedImage, local_registry, push_test_image

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(120)]

INSECURE = "--no-registry-tls-verify"  # the test registry speaks plain HTTP


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (apt-get install -y docker-registry)")
    with local_registry(tmp_path / "registry") as running:
        yield running


Publish = Callable[..., PushedImage]


@pytest.fixture
def publish(registry: LocalRegistry, cluster: FakeKubeServer) -> Publish:
    """Push model M's image to the registry (under the tag its release names) and let the
    cluster's nodes see the same; `content` changes the bytes (a re-push of the tag)."""

    def push(model: str, content: str | None = None) -> PushedImage:
        tag = release_for(model).bento_version
        pushed = push_test_image(
            registry, f"mlgitops/{DEPLOYMENT}", tag, content or f"model {model}"
        )
        cluster.registry.push(pushed.reference, pushed.digest, pushed.config)
        return pushed

    return push


def test_deploy_pins_the_registry_digest_and_records_it(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, publish: Publish
) -> None:
    a = publish("A")
    commit = gitops_repo.commit_model("A", a.reference)

    result = cli("deploy", "--env", "staging", INSECURE, "--require-digest")

    assert result.code == 0, result.err
    pinned = f"{a.reference}@{a.digest}"
    assert deployed_image(cluster) == pinned
    assert f"deployed {commit[:12]} to staging" in result.out
    assert pinned in result.out
    assert running_digests(cluster) == {a.digest}
    [entry] = history_entries(cluster)
    assert (entry["image"], entry["image_digest"], entry["digest_source"]) == (
        a.reference,
        a.digest,
        "registry",
    )
    table = cli("history", "--env", "staging")
    assert a.digest.split(":")[1][:12] in table.out


@pytest.mark.parametrize("image_id_format", ["docker", "config"])
def test_every_imageid_format_is_checked(
    cli: Any,
    cluster: FakeKubeServer,
    gitops_repo: GitOpsRepo,
    publish: Publish,
    image_id_format: str,
) -> None:
    """Docker's `docker-pullable://repo@digest`, and the bare config digest of an image the node
    has without a repo digest (compared with the config of the pinned manifest)."""
    cluster.registry.image_id_format = image_id_format
    a = publish("A")
    gitops_repo.commit_model("A", a.reference)

    result = cli("deploy", "--env", "staging", INSECURE)

    assert result.code == 0, result.err
    [entry] = history_entries(cluster)
    assert entry["image_digest"] == a.digest
    if image_id_format == "config":
        assert entry["image_id"] == a.config


def test_pods_running_other_bytes_fail_the_rollout(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, publish: Publish
) -> None:
    """A node reporting an image whose config is not the pinned manifest's (here: the view says
    so; on a cluster: a mirror or an admission webhook rewriting images) is a WrongImage."""
    cluster.registry.image_id_format = "config"
    a = publish("A")
    gitops_repo.commit_model("A", a.reference)
    cluster.registry.push(a.reference, a.digest, config="sha256:" + "e" * 64)

    result = cli("deploy", "--env", "staging", INSECURE)

    assert result.code == 10, result.err
    assert f"WrongImage: pod {DEPLOYMENT}-" in result.err
    assert f"not the config of {a.digest}" in result.err
    assert history_entries(cluster)[-1]["outcome"] == "failed"


def test_rollback_restores_the_recorded_digest_after_the_tag_moved(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, publish: Publish
) -> None:
    a = publish("A")
    gitops_repo.commit_model("A", a.reference)
    assert cli("deploy", "--env", "staging", INSECURE).code == 0
    b = publish("B")
    gitops_repo.commit_model("B", b.reference)
    assert cli("deploy", "--env", "staging", INSECURE).code == 0
    # A's tag is pushed again with other bytes: the registry and the nodes now serve those.
    a2 = publish("A", content="model A, rebuilt differently")
    assert a2.digest != a.digest

    result = cli("rollback", "--env", "staging", INSECURE)

    assert result.code == 0, result.err
    assert f"{a.reference}@{a.digest}" in result.out
    assert deployed_image(cluster) == f"{a.reference}@{a.digest}"
    assert running_digests(cluster) == {a.digest}
    last = history_entries(cluster)[-1]
    assert (last["kind"], last["rollback_of"]) == ("rollback", 1)
    assert (last["image_digest"], last["digest_source"]) == (a.digest, "history")


def test_a_tag_pushed_again_deploys_the_new_digest_and_says_so(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, publish: Publish
) -> None:
    a = publish("A")
    gitops_repo.commit_model("A", a.reference)
    assert cli("deploy", "--env", "staging", INSECURE).code == 0
    a2 = publish("A", content="model A, rebuilt")

    result = cli("deploy", "--env", "staging", INSECURE)

    assert result.code == 0, result.err
    assert (
        f"note: {a.reference} ran as {a.digest} in #1; the registry now serves {a2.digest} "
        "under that tag (pushed again)"
    ) in result.err
    assert deployed_image(cluster) == f"{a.reference}@{a2.digest}"
    assert running_digests(cluster) == {a2.digest}
    assert [e["image_digest"] for e in history_entries(cluster)] == [a.digest, a2.digest]


@pytest.mark.parametrize("how", ["revert", "rev"])
def test_going_back_to_a_re_pushed_tag_pins_the_digest_it_ran(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, publish: Publish, how: str
) -> None:
    """A ran as D1, then B. A's tag is pushed again (D2). Going back to A by Git revision (a
    revert commit, or `--rev` A's commit) runs D1, as `mlgitops rollback` would; the dry run
    shows the same. Only redeploying A while A runs takes D2."""
    a = publish("A")
    commit_a = gitops_repo.commit_model("A", a.reference)
    assert cli("deploy", "--env", "staging", INSECURE, "--require-digest").code == 0
    b = publish("B")
    commit_b = gitops_repo.commit_model("B", b.reference)
    assert cli("deploy", "--env", "staging", INSECURE, "--require-digest").code == 0
    a2 = publish("A", content="model A, pushed again")
    assert a2.digest != a.digest
    rev = gitops_repo.revert(commit_b) if how == "revert" else commit_a
    args = ("deploy", "--env", "staging", "--rev", rev, INSECURE, "--require-digest")
    pinned = f"{a.reference}@{a.digest}"

    dry = cli(*args, "--dry-run")
    result = cli(*args)

    assert dry.code == 0, dry.err
    assert re.search(rf"^\+\s+image: {re.escape(pinned)}$", dry.out, re.M)
    assert result.code == 0, result.err
    [note] = [line for line in result.err.splitlines() if line.startswith("note:")]
    assert note == (
        f"note: {a.reference} ran as {a.digest} in #1; the registry now serves {a2.digest} "
        f"under that tag (pushed again); going back to it, this deploy pins {a.digest}, the "
        "bytes it ran (deploy it again to take the new ones)"
    )
    assert deployed_image(cluster) == pinned
    assert running_digests(cluster) == {a.digest}
    last = history_entries(cluster)[-1]
    assert (last["kind"], last["image"], last["image_digest"], last["digest_source"]) == (
        "deploy",
        a.reference,
        a.digest,
        "history",
    )

    again = cli(*args)

    assert again.code == 0, again.err
    assert deployed_image(cluster) == f"{a.reference}@{a2.digest}"
    assert running_digests(cluster) == {a2.digest}
    assert history_entries(cluster)[-1]["digest_source"] == "registry"


def test_the_automatic_rollback_restores_the_recorded_digest(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, publish: Publish
) -> None:
    a = publish("A")
    gitops_repo.commit_model("A", a.reference)
    assert cli("deploy", "--env", "staging", INSECURE).code == 0
    publish("A", content="a re-push nobody meant")
    c = publish("C")
    gitops_repo.commit_model("C", c.reference)
    cluster.fail_image(c.reference)

    result = cli("deploy", "--env", "staging", INSECURE)

    assert result.code == 10
    assert f"rolled back to #1 ({gitops_repo.git('rev-parse', 'HEAD~1')[:12]}" in result.err
    assert deployed_image(cluster) == f"{a.reference}@{a.digest}"
    assert running_digests(cluster) == {a.digest}
    assert [(e["kind"], e["outcome"], e["image_digest"]) for e in history_entries(cluster)] == [
        ("deploy", "succeeded", a.digest),
        ("deploy", "failed", c.digest),
        ("auto-rollback", "succeeded", a.digest),
    ]


def test_a_re_pushed_tag_fails_the_rollout_when_the_registry_cannot_be_asked(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, tmp_path: Path
) -> None:
    """A ran as digest D1 (#1). The tag is pushed again (D2) and the registry is out of reach
    for the deployer: the deploy applies the tag, the new pods pull D2, which is not what this
    tag ran before: WrongImage, and the rollback pins D1 again."""
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (apt-get install -y docker-registry)")
    tag = release_for("A").bento_version
    with local_registry(tmp_path / "registry") as registry:
        a = push_test_image(registry, f"mlgitops/{DEPLOYMENT}", tag, "model A")
        cluster.registry.push(a.reference, a.digest, a.config)
        gitops_repo.commit_model("A", a.reference)
        assert cli("deploy", "--env", "staging", INSECURE).code == 0
    cluster.registry.push(a.reference, "sha256:" + "2" * 64)  # re-pushed; what nodes now pull

    result = cli("deploy", "--env", "staging", INSECURE)

    assert result.code == 10, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("registry not asked")]
    assert len(lines) == 1
    assert f"applying the tag {a.reference} unpinned" in lines[0]
    assert f"runs sha256:{'2' * 64}, not {a.digest}" in result.err
    assert f"what {a.reference} ran in #1: was the tag pushed again?" in result.err
    assert "rolled back to #1" in result.err
    assert deployed_image(cluster) == f"{a.reference}@{a.digest}"
    assert running_digests(cluster) == {a.digest}
    outcomes = [(e["kind"], e["outcome"], e["digest_source"]) for e in history_entries(cluster)]
    assert outcomes == [
        ("deploy", "succeeded", "registry"),
        ("deploy", "failed", ""),
        ("auto-rollback", "succeeded", "history"),
    ]


def test_an_unreachable_registry_applies_the_tag_and_records_what_the_pods_run(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    image = f"127.0.0.1:{free_port()}/mlgitops/{DEPLOYMENT}:{release_for('A').bento_version}"
    gitops_repo.commit_model("A", image)
    pulled = cluster.registry.push(image)  # the nodes reach a registry the deployer cannot

    result = cli("deploy", "--env", "staging", INSECURE)

    assert result.code == 0, result.err
    notes = [line for line in result.err.splitlines() if "registry" in line]
    assert len(notes) == 1
    assert notes[0].startswith("registry not asked: registry 127.0.0.1:")
    assert "Connection refused" in notes[0]
    assert deployed_image(cluster) == image
    [entry] = history_entries(cluster)
    assert (entry["image_digest"], entry["digest_source"]) == (pulled, "pods")


def test_require_digest_refuses_when_the_registry_cannot_be_asked(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    image = f"127.0.0.1:{free_port()}/mlgitops/{DEPLOYMENT}:{release_for('A').bento_version}"
    gitops_repo.commit_model("A", image)

    result = cli("deploy", "--env", "staging", INSECURE, "--require-digest")

    assert result.code == 32
    [line] = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: cannot pin {image} to a digest (--require-digest): registry")
    assert cluster.get_object("deployments", DEPLOYMENT, STAGING_NS) is None
    assert cluster.get_object("leases", f"mlgitops-deploy-{DEPLOYMENT}", STAGING_NS) is None
    assert history_entries(cluster) == []


def test_a_tag_missing_from_the_registry_is_refused_before_any_write(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, registry: LocalRegistry
) -> None:
    image = f"{registry.host}/mlgitops/{DEPLOYMENT}:{release_for('A').bento_version}"
    gitops_repo.commit_model("A", image)

    result = cli("deploy", "--env", "staging", INSECURE)

    assert result.code == 32
    assert "HTTP 404" in result.err
    assert "push it first (`mlgitops image push`)" in result.err
    assert cluster.get_object("deployments", DEPLOYMENT, STAGING_NS) is None


def test_the_dry_run_shows_the_pinned_image(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, publish: Publish
) -> None:
    a = publish("A")
    gitops_repo.commit_model("A", a.reference)

    result = cli("deploy", "--env", "staging", INSECURE, "--dry-run")

    assert result.code == 0, result.err
    assert re.search(rf"^\+\s+image: {re.escape(f'{a.reference}@{a.digest}')}$", result.out, re.M)
    assert cluster.get_object("deployments", DEPLOYMENT, STAGING_NS) is None


def test_the_readme_deploy_commands(
    kubectl: Any,
    cli: Any,
    cluster: FakeKubeServer,
    gitops_repo: GitOpsRepo,
    publish: Publish,
) -> None:
    """README, "Deploying and rolling back", command by command (the test registry speaks plain
    HTTP, hence the one extra option)."""
    k8s = gitops_repo.path / "k8s"
    kubectl("apply", "--server-side", "-k", str(k8s / "bootstrap/production"), check=True)
    a, b = publish("A"), publish("B")
    commit_a = gitops_repo.commit_model("A", a.reference)
    production = "mlgitops-production"

    assert cli("deploy", "--env", "production", "--require-digest", INSECURE).code == 0
    gitops_repo.commit_model("B", b.reference)
    assert cli("deploy", "--env", "production", "--require-digest", INSECURE).code == 0
    assert deployed_image(cluster, production) == f"{b.reference}@{b.digest}"
    dry = cli("deploy", "--env", "production", "--rev", commit_a[:7], "--dry-run", INSECURE)
    assert dry.code == 0, dry.err
    assert re.search(rf"^\+\s+image: {re.escape(f'{a.reference}@{a.digest}')}$", dry.out, re.M)
    history = cli("history", "--env", "production")
    assert history.code == 0
    assert b.digest.split(":")[1][:12] in history.out
    back = cli("rollback", "--env", "production", INSECURE)
    assert back.code == 0, back.err
    assert deployed_image(cluster, production) == f"{a.reference}@{a.digest}"
    to = cli("rollback", "--env", "production", "--to", "2", INSECURE)
    assert to.code == 0, to.err
    assert deployed_image(cluster, production) == f"{b.reference}@{b.digest}"
