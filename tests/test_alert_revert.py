"""Alert -> revert -> deploy: a critical alert sent to `mlgitops revert serve` prepares the
revert branch, and `mlgitops deploy` of that branch brings the previous release's image back."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitops.cli.main import main
from tests.mlgitops.deploy.conftest import cluster  # noqa: F401 (the bootstrapped fake cluster)
from tests.mlgitops.deploy.helpers import deployed_image, history_entries, running_images
from tests.mlgitops.revert.helpers import A, B, ReleaseRepo, build_template, payload, serving
from tests.support.fake_kube import FakeKubeServer

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]


def _deploy(repo: Path, kube: FakeKubeServer, rev: str) -> int:
    # The pipeline's releases are not signed here (tests/mlgitops/attest signs and verifies).
    args = ["deploy", "--env", "staging", "--rev", rev, "--timeout", "30", "--allow-unverified"]
    args += ["--repo", str(repo)]
    return main([*args, "--kubeconfig", str(kube.kubeconfig_path)])


def test_an_alert_reverts_the_release_and_the_branch_deploys_the_previous_image(
    cluster: FakeKubeServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    repo = ReleaseRepo(build_template(tmp_path / "repo"))
    main_before = repo.git("rev-parse", "main")
    assert _deploy(repo.path, cluster, "main") == 0
    assert deployed_image(cluster) == B.image

    with serving(repo.path, tmp_path) as receiver:
        response = receiver.post(payload(), token=receiver.token)
    assert response.status_code == 202, response.text
    branch = response.json()["branch"]
    assert branch == f"revert/{B.bento_version}"
    assert repo.git("rev-parse", "main") == main_before

    assert _deploy(repo.path, cluster, branch) == 0
    assert deployed_image(cluster) == A.image
    assert running_images(cluster) == {A.image}
    last = history_entries(cluster)[-1]
    assert (last["kind"], last["outcome"]) == ("deploy", "succeeded")
    assert last["commit"] == repo.git("rev-parse", branch)
    assert last["model_hash"] == A.model_hash
