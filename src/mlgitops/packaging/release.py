"""The release record a package build writes, and the bento version that names it.

The bento version is a content hash of everything a pod serves and everything its release
record says: the model file's sha256, the operating threshold, the reference profile, the
schema, the model card, the score reference and alert rules it ships, the serving code and its
pinned runtime requirements, and the release record itself (every field but the version and
what derives from it: model tag, image tag). The same model with the same record therefore
always maps to the same bento, image tag and manifests (a rollback needs no rebuild), and a tag
never names two records: the same model under other params (another params hash) is another
bento. An existing bento or model store entry of the tag must carry the same record
(packaging/bento.py checks it).

`package.model_format` picks the served file: the joblib pipeline, or the export stage's
`model.onnx`. For onnx the release's model_hash is model.onnx's, the bento carries no pipeline,
and the pipeline's scores on probe records go beside it for the pod's self-check; the graph
must reproduce them here already, so a stale export (not of this pipeline) fails the build.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlgitops import __version__
from mlgitops.config import Params
from mlgitops.errors import ArtifactError, MlgitopsError
from mlgitops.io import file_md5, file_sha256
from mlgitops.packaging.challenger import Challenger, experiment_digest, release_experiment
from mlgitops.records import load_metrics, load_model_card
from mlgitops.release import ReleaseRecord
from mlgitops.serving.layout import ONNX_MODEL_FILE

HEADLINE_METRICS = (
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "fpr",
    "fnr",
    "alerts_per_1000",
    "missed_frauds_per_1000",
    "expected_cost_per_1000",
)


def params_hash(params: Params) -> str:
    """Hash of every param that shapes the model (paths and serving knobs do not)."""
    shaping = params.model_dump(
        mode="json",
        by_alias=True,
        include={"data", "validate_", "split", "tune", "train", "threshold"},
    )
    shaping["data"].pop("path", None)  # the data is identified by its own hash
    canonical = json.dumps(shaping, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def serving_code_digest(requirements: list[str]) -> str:
    """sha256 over what the bento ships besides the model: its source files and the pinned
    runtime requirements. Pipeline-only edits leave it, and so the bento version, unchanged."""
    from mlgitops.packaging.bento import shipped_source_files

    digest = hashlib.sha256()
    for destination, path in shipped_source_files():
        digest.update(destination.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update("\n".join(requirements).encode())
    return digest.hexdigest()


def shipped_monitoring(params: Params) -> dict[str, Path]:
    """Monitoring files the model store entry carries: {name in the entry: source}."""
    from mlgitops.serving.layout import RULES_FILE, SCORE_REFERENCE_FILE

    return {
        SCORE_REFERENCE_FILE: params.paths.score_reference,
        RULES_FILE: params.paths.prometheus_rules,
    }


# Fields of the release record that derive from the bento version (the image's repository,
# which does not, is hashed in their place).
VERSION_DERIVED = frozenset({"bento_version", "model_tag", "image"})


def release_digest(record: ReleaseRecord) -> str:
    """sha256 of everything the release record says except what derives from the version, so
    that one bento version has one record. Absent optional fields are left out: a field added
    to ReleaseRecord later does not move existing versions."""
    content = record.model_dump(mode="json", exclude_none=True, exclude=set(VERSION_DERIVED))
    content["image_repository"] = record.image.rpartition(":")[0]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def bento_version(
    model_sha: str,
    threshold: float,
    profile: Path,
    schema: Path,
    code_digest: str,
    length: int,
    monitoring: dict[str, Path] | None = None,
    model_format: str = "pipeline",
    experiment: str | None = None,
    *,
    release: str,
    model_card: Path,
) -> str:
    content = {
        "model_sha256": model_sha,
        "model_format": model_format,
        "threshold": repr(threshold),
        "profile_sha256": file_sha256(profile),
        "schema_sha256": file_sha256(schema),
        # Shipped and served by /metadata (params, model type): part of what the tag names.
        "model_card_sha256": file_sha256(model_card),
        "serving_code_sha256": code_digest,  # shipped source + pinned requirements
        # The release record (release_digest): hashes, threshold, metrics, data_until, ...
        "release_sha256": release,
    }
    # The shipped reference and rules: a rules-only change is a new bento, and a revert the old.
    for name, path in sorted((monitoring or {}).items()):
        content[f"{name}_sha256"] = file_sha256(path)
    # A bento serving a challenger too (experiment_digest); absent without one.
    if experiment is not None:
        content["experiment_sha256"] = experiment
    canonical = json.dumps(content, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:length]


def served_file(params: Params) -> Path:
    """The file the bento serves for `package.model_format`."""
    if params.package.model_format == "pipeline":
        return Path(params.paths.model)
    path = Path(params.paths.export_dir) / ONNX_MODEL_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{path}: not found; package.model_format onnx needs the export stage's model.onnx "
            "(export.artifacts must include onnx; run `dvc repro`)"
        )
    return path


def make_release(
    params: Params, requirements: list[str], challenger: Challenger | None = None
) -> ReleaseRecord:
    pipeline_sha = file_sha256(params.paths.model)
    metrics = load_metrics(params.paths.metrics)
    card = load_model_card(params.paths.model_card)
    if card.model_hash != f"sha256:{pipeline_sha}":
        raise ArtifactError(
            f"{params.paths.model_card}: describes model {card.model_hash}, but "
            f"{params.paths.model} is sha256:{pipeline_sha} (run `dvc repro`)"
        )
    model_format = params.package.model_format
    model_sha = file_sha256(served_file(params)) if model_format != "pipeline" else pipeline_sha
    threshold = metrics.threshold
    experiment = None
    experiment_sha = None
    if challenger is not None and params.active_experiment is not None:
        experiment = release_experiment(
            params, params.active_experiment, challenger, f"sha256:{model_sha}"
        )
        # The pin carries the challenger's whole release record too.
        experiment_sha = experiment_digest(experiment, challenger.release)
    bento_name, repository = params.package.bento_name, params.package.image_repository
    # The record without its version first: the version hashes it.
    unversioned = ReleaseRecord(
        bento_name=bento_name,
        bento_version="",
        model_tag=f"{bento_name}:",
        model_hash=f"sha256:{model_sha}",
        model_format=model_format,
        source_model_hash=card.model_hash if model_format != "pipeline" else None,
        data_hash=f"md5:{file_md5(params.data.path)}",
        params_hash=params_hash(params),
        image=f"{repository}:",
        threshold=threshold,
        threshold_policy=metrics.threshold_policy,
        metrics={name: float(getattr(metrics, name)) for name in HEADLINE_METRICS},
        data_until=card.data_until,
        mlgitops_version=__version__,
        experiment=experiment,
    )
    version = bento_version(
        model_sha,
        threshold,
        params.paths.profile,
        params.paths.schema_file,
        serving_code_digest(requirements),
        params.package.version_length,
        shipped_monitoring(params),
        model_format,
        experiment_sha,
        release=release_digest(unversioned),
        model_card=params.paths.model_card,
    )
    return unversioned.model_copy(
        update={
            "bento_version": version,
            "model_tag": f"{bento_name}:{version}",
            "image": f"{repository}:{version}",
        }
    )


def checked_reference(params: Params, model_file: Path) -> bytes:
    """The pipeline's scores on probe records, as the pod self-checks the exported graph
    against them; raises unless the graph reproduces them here."""
    from mlgitops.io import load_pipeline
    from mlgitops.profile import load_profile
    from mlgitops.serving.model import build_exported_model, reference_scores

    profile = load_profile(params.paths.profile)
    reference = reference_scores(load_pipeline(params.paths.model), profile)
    try:
        build_exported_model(model_file.read_bytes(), profile, 0.5, reference)
    except MlgitopsError as error:
        message = f"{model_file} is not an export of {params.paths.model}: {error}"
        raise ArtifactError(message) from None
    return json.dumps(reference, sort_keys=True, separators=(",", ":")).encode()
