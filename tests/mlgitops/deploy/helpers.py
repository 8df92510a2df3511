"""A throw-away GitOps repository (a copy of k8s/ plus release files per model) and helpers to
inspect the fake API server; shared by the deploy tests and benchmarks/deploy.py."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from mlgitops.deploy.lock import Clocks
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


CREDENTIALS_SECRET = "fraud-detector-credentials"


def credentials_secret(namespace: str) -> dict[str, Any]:
    """The Secret the pods mount (docs/deploy.md: created by an admin, never in Git)."""
    import base64
    import secrets

    def value() -> str:
        return base64.b64encode(secrets.token_hex(32).encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": CREDENTIALS_SECRET, "namespace": namespace},
        "data": {"feedback-token": value(), "request-id-key": value()},
    }


def bootstrap_environments(fake: FakeKubeServer, credentials: bool = True) -> FakeKubeServer:
    """The namespaces of staging and production and (`credentials`) the Secret the pods mount:
    what a cluster admin does once."""
    for env in ("staging", "production"):
        namespace = f"mlgitops-{env}"
        fake.put_object(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"mlgitops.io/environment": env}},
                "status": {"phase": "Active"},
            }
        )
        if credentials:
            fake.put_object(credentials_secret(namespace))
    return fake


def deployment(fake: FakeKubeServer, namespace: str = STAGING_NS) -> dict[str, Any]:
    obj = fake.get_object("deployments", DEPLOYMENT, namespace)
    assert obj is not None, "the Deployment does not exist"
    return obj


def deployed_image(fake: FakeKubeServer, namespace: str = STAGING_NS) -> str:
    """The model container's image in the Deployment, as applied (`repo:tag@sha256:...`)."""
    containers = deployment(fake, namespace)["spec"]["template"]["spec"]["containers"]
    return next(c["image"] for c in containers if c["name"] == "server")


def deployed_tag(fake: FakeKubeServer, namespace: str = STAGING_NS) -> str:
    """The Deployment's image without its digest: `repo:tag`."""
    return deployed_image(fake, namespace).split("@")[0]


def running_images(fake: FakeKubeServer, namespace: str = STAGING_NS) -> set[str]:
    """Images (spec, as applied) of the pods that are Ready."""
    images = set()
    for pod in fake.list_objects("pods", namespace):
        conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") == "True":
            images.update(c["image"] for c in pod["spec"]["containers"])
    return images


def running_tags(fake: FakeKubeServer, namespace: str = STAGING_NS) -> set[str]:
    return {image.split("@")[0] for image in running_images(fake, namespace)}


def running_digests(fake: FakeKubeServer, namespace: str = STAGING_NS) -> set[str]:
    """The digests the Ready pods report in their imageID (what they run)."""
    digests = set()
    for pod in fake.list_objects("pods", namespace):
        conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") == "True":
            for status in pod["status"].get("containerStatuses") or []:
                digests.add(status["imageID"].rpartition("@")[2])
    return digests


def history_entries(fake: FakeKubeServer, namespace: str = STAGING_NS) -> list[dict[str, Any]]:
    import json

    cm = fake.get_object("configmaps", f"mlgitops-history-{DEPLOYMENT}", namespace)
    if cm is None:
        return []
    data = cm.get("data") or {}
    return [{**json.loads(data[k]), "seq": int(k)} for k in sorted(data)]


def dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True)


class Timeline:
    """Monotonic time for every deployer of a test; `sleep` advances it and runs the hooks (what
    other deployers do meanwhile)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.hooks: list[Callable[[float], None]] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for hook in self.hooks:
            hook(self.now)

    def clocks(self, skew_s: float = 0.0) -> Clocks:
        """A deployer whose wall clock is `skew_s` seconds off."""
        start = datetime.now(UTC)

        def wall() -> datetime:
            return start + timedelta(seconds=self.now - 1000.0 + skew_s)

        return Clocks(wall=wall, monotonic=self.monotonic, sleep=self.sleep)
