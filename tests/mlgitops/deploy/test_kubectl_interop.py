"""The real kubectl and `mlgitops deploy` manage the same objects on the same API server.

`kubectl apply --server-side -k k8s/overlays/<env>` is how a pull-based GitOps tool deploys a
commit; `mlgitops deploy` must be able to take over from it (and vice versa).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.mlgitops.deploy.helpers import (
    STAGING_NS,
    GitOpsRepo,
    deployed_image,
    deployment,
    release_for,
    running_images,
)
from tests.support.fake_kube import FakeKubeServer

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(180)]


def test_kubectl_applies_our_overlay_and_mlgitops_takes_over(
    kubectl: Any, cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    k8s = gitops_repo.path / "k8s"

    kubectl("apply", "--server-side", "-k", str(k8s / "bootstrap/staging"), check=True)
    kubectl("apply", "--server-side", "-k", str(k8s / "overlays/staging"), check=True)
    status = kubectl(
        "rollout", "status", "deployment/fraud-detector", "-n", STAGING_NS, "--timeout=60s",
        check=True,
    )  # fmt: skip
    assert "successfully rolled out" in status.stdout
    assert running_images(cluster) == {release_for("A").image}
    assert cluster.get_object("roles", "mlgitops-deployer", STAGING_NS) is not None

    gitops_repo.commit_model("B")
    result = cli("deploy", "--env", "staging")

    assert result.code == 0, result.err
    assert deployed_image(cluster) == release_for("B").image
    managers = {m["manager"] for m in deployment(cluster)["metadata"]["managedFields"]}
    assert {"kubectl", "mlgitops"} <= managers
    kubectl(
        "rollout", "status", "deployment/fraud-detector", "-n", STAGING_NS, "--timeout=60s",
        check=True,
    )  # fmt: skip
    assert running_images(cluster) == {release_for("B").image}
