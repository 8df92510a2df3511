"""A throw-away GitOps repository (a copy of k8s/ plus release files per model) and helpers to
inspect the fake API server; shared by the deploy tests and benchmarks/deploy.py."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlgitops.release import ReleaseRecord, write_release
from tests.support.fake_kube import FakeKubeServer
from tests.support.project import GitRepo

PROJECT = Path(__file__).resolve().parents[3]
IMAGE_REPOSITORY = "registry.example.com/mlgitops/fraud-detector"
DEPLOYMENT = "fraud-detector"
STAGING_NS = "mlgitops-staging"


def release_for(model: str, image: str | None = None) -> ReleaseRecord:
    """A plausible release record whose hashes are derived from the model's name."""
    model_hash = hashlib.sha256(f"model {model}".encode()).hexdigest()
    version = model_hash[:12]
    return ReleaseRecord(
        bento_name=DEPLOYMENT,
        bento_version=version,
        model_tag=f"{DEPLOYMENT}:{version}",
        model_hash=f"sha256:{model_hash}",
        data_hash="md5:" + hashlib.md5(f"data {model}".encode()).hexdigest(),
        params_hash="sha256:" + hashlib.sha256(f"params {model}".encode()).hexdigest(),
        image=image or f"{IMAGE_REPOSITORY}:{version}",
        threshold=0.3,
        threshold_policy="min_expected_cost",
        metrics={"roc_auc": 0.9},
        trained_at="2026-11-22T00:00:00+00:00",
        mlgitops_version="0.1.0",
    )


@dataclass
class GitOpsRepo(GitRepo):
    def commit_model(self, model: str, image: str | None = None) -> str:
        """Write release.json and k8s/base/release.yaml as the package stage does; commit."""
        record = release_for(model, image)
        write_release(record, self.path / "release.json", self.path / "k8s/base/release.yaml")
        self.git("add", "release.json", "k8s/base/release.yaml")
        self.git("commit", "-q", "-m", f"model {model}")
        return self.git("rev-parse", "HEAD")

    def revert(self, commit: str) -> str:
        self.git("revert", "--no-edit", commit)
        return self.git("rev-parse", "HEAD")


def make_repo(path: Path) -> GitOpsRepo:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT / "k8s", path / "k8s")
    shutil.copy(PROJECT / "params.yaml", path / "params.yaml")
    repo = GitOpsRepo(path)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "ci@example.com")
    repo.git("config", "user.name", "CI")
    repo.git("config", "commit.gpgsign", "false")
    repo.git("add", "k8s", "params.yaml")
    repo.git("commit", "-q", "-m", "manifests")
    return repo


def bootstrap_environments(fake: FakeKubeServer) -> FakeKubeServer:
    """The namespaces of staging and production (what a cluster admin does once)."""
    for env in ("staging", "production"):
        fake.put_object(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": f"mlgitops-{env}", "labels": {"mlgitops.io/environment": env}},
                "status": {"phase": "Active"},
            }
        )
    return fake


def deployment(fake: FakeKubeServer, namespace: str = STAGING_NS) -> dict[str, Any]:
    obj = fake.get_object("deployments", DEPLOYMENT, namespace)
    assert obj is not None, "the Deployment does not exist"
    return obj


def deployed_image(fake: FakeKubeServer, namespace: str = STAGING_NS) -> str:
    containers = deployment(fake, namespace)["spec"]["template"]["spec"]["containers"]
    return next(c["image"] for c in containers if c["name"] == "server")


def running_images(fake: FakeKubeServer, namespace: str = STAGING_NS) -> set[str]:
    """Images of the pods that are Ready."""
    images = set()
    for pod in fake.list_objects("pods", namespace):
        conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") == "True":
            images.update(c["image"] for c in pod["spec"]["containers"])
    return images


def history_entries(fake: FakeKubeServer, namespace: str = STAGING_NS) -> list[dict[str, Any]]:
    import json

    cm = fake.get_object("configmaps", f"mlgitops-history-{DEPLOYMENT}", namespace)
    if cm is None:
        return []
    data = cm.get("data") or {}
    return [{**json.loads(data[k]), "seq": int(k)} for k in sorted(data)]


def dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True)
