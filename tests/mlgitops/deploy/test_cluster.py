"""The same flow against a real cluster: opt-in, runs only when KUBECONFIG is set.

It creates a throw-away namespace (so it needs rights to create and delete namespaces), deploys
two small public images standing in for two models (pinned to the digests Docker Hub serves),
fails a third (an unreachable registry: applied by tag, then rolled back), reverts, rolls back
and deletes the namespace. Images: $MLGITOPS_IT_IMAGE_A / $MLGITOPS_IT_IMAGE_B (any image with
`python` on PATH; a tiny HTTP server stands in for the model server).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.mlgitops.deploy.helpers import make_repo

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs KUBECONFIG (a cluster)"),
]

IMAGE_A = os.environ.get("MLGITOPS_IT_IMAGE_A", "python:3.12-alpine")
IMAGE_B = os.environ.get("MLGITOPS_IT_IMAGE_B", "python:3.13-alpine")
IMAGE_BROKEN = "registry.invalid/mlgitops/does-not-exist:0"
# Answers 200 on every path, so /livez and /readyz pass; writes nothing to the read-only root.
SERVER = (
    "import http.server as h\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "h.HTTPServer(('', 3000), H).serve_forever()\n"
)


def _overlay(repo: Path, namespace: str) -> None:
    overlay = repo / "k8s/overlays/it"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "resources": ["../../base"],
                "patches": [{"path": "deployment.yaml"}, {"path": "hpa.yaml"}],
            }
        )
    )
    (overlay / "deployment.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "fraud-detector"},
                "spec": {
                    "progressDeadlineSeconds": 120,
                    "template": {"spec": {"containers": [{
                        "name": "server",
                        "command": ["python", "-c", SERVER],
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                      "limits": {"cpu": "200m", "memory": "128Mi"}},
                    }]}},
                },
            }
        )
    )  # fmt: skip
    (overlay / "hpa.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "fraud-detector"},
                "spec": {"minReplicas": 1, "maxReplicas": 2},
            }
        )
    )


def test_deploy_flow_on_a_real_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlgitops.cli.main import main
    from mlgitops.deploy.kube import Kube

    namespace = f"mlgitops-it-{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "repo")
    _overlay(repo.path, namespace)
    repo.git("add", "k8s")
    repo.git("commit", "-q", "-m", "it overlay")
    kube = Kube.connect()
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    def run(*args: str) -> Any:
        capsys.readouterr()
        code = main([*args, "--env", "it", "--repo", str(repo.path)])
        return code, capsys.readouterr()

    def live_image() -> str:
        """The Deployment's image without its digest; the digest must be there."""
        obj = kube.get("apps/v1", "Deployment", "fraud-detector", namespace)
        assert obj is not None
        image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        tag, _, digest = image.partition("@")
        assert digest.startswith("sha256:"), image  # pinned (Docker Hub answers anonymously)
        return tag

    try:
        repo.commit_model("A", IMAGE_A)
        assert run("deploy", "--timeout", "600")[0] == 0
        assert live_image() == IMAGE_A
        commit_b = repo.commit_model("B", IMAGE_B)
        assert run("deploy", "--timeout", "600")[0] == 0
        assert live_image() == IMAGE_B

        repo.commit_model("C", IMAGE_BROKEN)
        code, out = run("deploy", "--timeout", "300")
        assert code == 10, out.err
        assert "rolled back" in out.err
        assert live_image() == IMAGE_B
        repo.revert(repo.git("rev-parse", "HEAD"))  # drop the broken model from Git too

        repo.revert(commit_b)
        assert run("deploy", "--timeout", "600")[0] == 0
        assert live_image() == IMAGE_A

        assert run("rollback", "--timeout", "600")[0] == 0
        assert live_image() == IMAGE_B

        code, out = run("deploy", "--dry-run")
        assert code == 0
        assert live_image() == IMAGE_B

        code, out = run("history")
        assert code == 0
        assert "auto-rollback" in out.out
        code, out = run("history", "--json")
        entries = [json.loads(line) for line in out.out.splitlines()]
        # Every success ran a known digest, and the kubelet reported the pinned one.
        assert all(e["image_digest"] for e in entries if e["outcome"] == "succeeded")
    finally:
        kube.delete("v1", "Namespace", namespace, None)
        kube.close()
