"""The real kubectl and `mlgitops deploy` manage the same objects on the same API server.

`kubectl apply --server-side -k k8s/overlays/<env>` is how a pull-based GitOps tool deploys a
commit; `mlgitops deploy` must be able to take over from it (and vice versa).
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.mlgitops.deploy.helpers import (
    STAGING_NS,
    GitOpsRepo,
    bootstrap_environments,
    deployed_image,
    deployment,
    release_for,
    running_images,
)
from tests.support.fake_kube import FakeKubeServer
from tests.support.fake_kube.plugin import find_kubectl
from tests.support.readme import readme_blocks

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


def _docs_block(heading: str) -> str:
    text = (Path(__file__).resolve().parents[3] / "docs" / "deploy.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    return block


def _one_line(command: str) -> str:
    return " ".join(command.replace("\\\n", " ").split())


def test_pods_start_only_with_the_credentials_secret_the_docs_create(
    kubectl: Any, fake_kube: FakeKubeServer, gitops_repo: GitOpsRepo, tmp_path: Path
) -> None:
    """The Deployment mounts Secret fraud-detector-credentials (`optional: false`): without it
    no pod starts (none could take labels safely); the admin's commands in docs/deploy.md (and
    README's, the same) create it and hand out the feedback token, and the rollout completes."""
    bootstrap_environments(fake_kube, credentials=False)
    namespace = "mlgitops-production"
    gitops_repo.commit_model("A")
    k8s = gitops_repo.path / "k8s"
    kubectl("apply", "--server-side", "-k", str(k8s / "bootstrap/production"), check=True)
    kubectl("apply", "--server-side", "-k", str(k8s / "overlays/production"), check=True)
    status = kubectl(
        "rollout", "status", "deployment/fraud-detector", "-n", namespace, "--timeout=2s"
    )
    assert status.returncode != 0
    pods = fake_kube.list_objects("pods", namespace)
    assert pods
    assert not running_images(fake_kube, namespace)
    waiting = {
        s["state"]["waiting"]["message"] for p in pods for s in p["status"]["containerStatuses"]
    }
    assert waiting == {'MountVolume.SetUp failed: secret "fraud-detector-credentials" not found'}

    block = _docs_block("## One-time setup per environment (cluster admin)")
    [readme] = [b for b in readme_blocks("## Deploying and rolling back") if "create secret" in b]
    create = next(c for c in readme.splitlines() if "create secret" in c).split("   #")[0]
    assert _one_line(create) in _one_line(block)
    env = {
        "PATH": f"{Path(find_kubectl() or 'kubectl').parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KUBECONFIG": str(fake_kube.kubeconfig_path),
    }
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=gitops_repo.path, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    secret = fake_kube.get_object("secrets", "fraud-detector-credentials", namespace)
    assert secret is not None
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(values) == {"feedback-token", "request-id-key"}
    assert all(re.fullmatch("[0-9a-f]{64}", v) for v in values.values())
    assert values["feedback-token"] != values["request-id-key"]
    assert (gitops_repo.path / "feedback-token").read_text() == values["feedback-token"]
    kubectl(
        "rollout", "status", "deployment/fraud-detector", "-n", namespace, "--timeout=60s",
        check=True,
    )  # fmt: skip
    assert running_images(fake_kube, namespace) == {release_for("A").image}
