"""The release record: the one small file, tracked in Git, that names what a commit deploys.

The package stage writes it together with the Kubernetes patch that pins the image, so that
`kubectl apply -k k8s/overlays/<env>` at any commit runs exactly that commit's model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml

from mlgitops.io import atomic_write_text, load_model_json
from mlgitops.model_base import FrozenModel

# Names shared by the release patch, the kustomize base and the deploy command.
CONTAINER_NAME = "server"
ANNOTATION_PREFIX = "mlgitops.io/"
ANNOTATION_BENTO_TAG = ANNOTATION_PREFIX + "bento-tag"
ANNOTATION_MODEL_HASH = ANNOTATION_PREFIX + "model-hash"
ANNOTATION_DATA_HASH = ANNOTATION_PREFIX + "data-hash"
ANNOTATION_PARAMS_HASH = ANNOTATION_PREFIX + "params-hash"
ANNOTATION_GIT_COMMIT = ANNOTATION_PREFIX + "git-commit"


class ReleaseExperiment(FrozenModel):
    """An experiment served by the release's bento: the challenger beside the model (params'
    `experiment:`; README, A/B and shadow experiments)."""

    mode: Literal["ab", "shadow"]
    share: float
    salt: str
    assignment_key: str
    challenger_revision: str
    challenger_commit: str
    challenger_bento_tag: str
    challenger_model_tag: str
    challenger_model_hash: str


class ReleaseRecord(FrozenModel):
    release_version: Literal[1] = 1
    bento_name: str
    bento_version: str
    model_tag: str
    # "sha256:<hex>" of the model file the pod serves (the joblib, or model.onnx).
    model_hash: str
    # What the pod serves: the fitted pipeline, or the export stage's ONNX graph of it.
    model_format: Literal["pipeline", "onnx"] = "pipeline"
    # With model_format onnx: "sha256:<hex>" of the pipeline it was exported from (the card's).
    source_model_hash: str | None = None
    # "md5:<hex>" of the data file, the hash DVC records for it in dvc.lock.
    data_hash: str
    # "sha256:<hex>" of the canonical JSON of the params that shape the model.
    params_hash: str
    image: str
    threshold: float
    threshold_policy: str
    metrics: dict[str, float]
    mlgitops_version: str
    # The latest event time of the training data (see ModelCard.data_until), if it has one.
    data_until: str | None = None
    # Records written before builds became reproducible carry the wall-clock training time;
    # kept readable so old commits can still be deployed and rolled back to. Never written now.
    trained_at: str | None = None
    # The challenger served beside the model while an experiment is on; None: none.
    experiment: ReleaseExperiment | None = None

    @property
    def bento_tag(self) -> str:
        return f"{self.bento_name}:{self.bento_version}"

    def pod_annotations(self) -> dict[str, str]:
        return {
            ANNOTATION_BENTO_TAG: self.bento_tag,
            ANNOTATION_MODEL_HASH: self.model_hash,
            ANNOTATION_DATA_HASH: self.data_hash,
            ANNOTATION_PARAMS_HASH: self.params_hash,
        }


def load_release(path: Path) -> ReleaseRecord:
    return load_model_json(ReleaseRecord, path)


def render_k8s_release_patch(record: ReleaseRecord, deployment_name: str) -> str:
    """A kustomize patch that pins the commit's image and lineage on the base Deployment."""
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/version": record.bento_version},
                    "annotations": record.pod_annotations(),
                },
                "spec": {"containers": [{"name": CONTAINER_NAME, "image": record.image}]},
            }
        },
    }
    header = (
        "# Written by the package stage (`dvc repro`); do not edit by hand.\n"
        f"# Pins bento {record.bento_tag} so this commit deploys exactly this model.\n"
    )
    return header + yaml.safe_dump(patch, sort_keys=False)


def write_release(record: ReleaseRecord, release_path: Path, k8s_patch_path: Path) -> None:
    atomic_write_text(release_path, record.model_dump_json(indent=2, exclude_none=True) + "\n")
    atomic_write_text(k8s_patch_path, render_k8s_release_patch(record, record.bento_name))
