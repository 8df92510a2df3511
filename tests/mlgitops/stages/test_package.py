from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from mlgitops.packaging import release as packaging
from mlgitops.packaging.bento import pinned_requirements, stored_pin
from mlgitops.release import ReleaseRecord, load_release
from mlgitops.stages import (
    evaluate,
    gate,
    package,
    rules,
    score_reference,
    split,
    train,
    validate,
)
from tests.mlgitops.export.conftest import trained  # noqa: F401  (the session fixture)
from tests.support.project import params_in


def _through_gate(config):
    # Through the monitoring stages too: the package ships their reference and rules.
    for stage in (validate, split, train, evaluate, score_reference, gate, rules):
        stage.run(config)


def test_params_hash_ignores_paths_and_serving(tmp_path):
    a = params_in(tmp_path / "a")
    b = params_in(tmp_path / "b", serving={"max_batch_size": 7}, package={"bento_name": "other"})
    assert packaging.params_hash(a) == packaging.params_hash(b)
    c = params_in(tmp_path / "c", threshold={"false_positive_cost": 1.0})
    assert packaging.params_hash(a) != packaging.params_hash(c)


def test_package_writes_release_bento_and_pin(params):
    _through_gate(params)
    summary = package.run(params)
    release = load_release(params.paths.release)
    assert release.bento_tag in summary
    assert release.image == f"{params.package.image_repository}:{release.bento_version}"
    assert len(release.bento_version) == params.package.version_length
    metrics = json.loads(params.paths.metrics.read_text())
    assert release.threshold == metrics["threshold"]
    with tarfile.open(params.paths.bento_archive) as archive:
        assert any(name.endswith("bento.yaml") for name in archive.getnames())
    patch = yaml.safe_load(params.paths.k8s_release_patch.read_text())
    template = patch["spec"]["template"]
    assert template["metadata"]["annotations"]["mlgitops.io/model-hash"] == release.model_hash
    assert template["spec"]["containers"][0]["image"] == release.image


def test_bento_version_follows_what_the_pod_serves(params):
    _through_gate(params)
    pins = pinned_requirements(params.paths.requirements_lock)
    first = packaging.make_release(params, pins)
    assert packaging.make_release(params, pins).bento_version == first.bento_version
    # A library upgrade in the lock is a new bento, even for the same model.
    upgraded = [*pins[:-1], pins[-1] + ".post1"]
    assert packaging.make_release(params, upgraded).bento_version != first.bento_version
    changed = params.model_copy(
        update={"threshold": params.threshold.model_copy(update={"policy": "fixed"})}
    )
    evaluate.run(changed)
    second = packaging.make_release(changed, pins)
    assert second.model_hash == first.model_hash
    assert second.bento_version != first.bento_version


def test_the_version_covers_every_field_of_the_release_record(params):
    """One tag, one truth: whatever the record says is hashed into the version, but for what
    derives from the version itself (model tag, image tag), whose repository is hashed."""
    _through_gate(params)
    record = packaging.make_release(params, pinned_requirements(params.paths.requirements_lock))
    digest = packaging.release_digest(record)
    changed = {
        "release_version": None,  # Literal[1]: nothing else is valid
        "bento_name": "other-detector",
        "model_hash": "sha256:" + "1" * 64,
        "model_format": "onnx",
        "source_model_hash": "sha256:" + "2" * 64,
        "data_hash": "md5:" + "3" * 32,
        "params_hash": "sha256:" + "4" * 64,
        "threshold": record.threshold + 1e-12,
        "threshold_policy": "fixed",
        "metrics": {**record.metrics, "pr_auc": record.metrics["pr_auc"] + 1e-6},
        "mlgitops_version": "0.1.1",
        "data_until": "2030-01-01T00:00:00+00:00",
        "trained_at": "2026-01-01T00:00:00+00:00",
        "experiment": {
            "mode": "shadow",
            "share": 1.0,
            "salt": "s",
            "assignment_key": "transaction_id",
            "challenger_revision": "v2",
            "challenger_commit": "c" * 40,
            "challenger_bento_tag": "fraud-detector:cccccccccccc",
            "challenger_model_tag": "fraud-detector:cccccccccccc",
            "challenger_model_hash": "sha256:" + "5" * 64,
        },
    }
    derived = packaging.VERSION_DERIVED
    assert set(changed) | derived == set(ReleaseRecord.model_fields)
    for field, value in changed.items():
        if value is None:
            continue
        other = ReleaseRecord.model_validate({**record.model_dump(), field: value})
        assert packaging.release_digest(other) != digest, field
    version = record.bento_version
    same = record.model_copy(
        update={"bento_version": "f" * 12, "model_tag": "x:y", "image": f"{record.image[:-12]}z"}
    )
    assert packaging.release_digest(same) == digest
    moved = record.model_copy(update={"image": f"registry.example.org/other:{version}"})
    assert packaging.release_digest(moved) != digest


def test_the_same_model_under_other_params_is_another_bento(params):
    """The issue's experiment: tuning on, `train:` changed, the tuner picks the same model; the
    params hash moves, so the bento tag does too (it used to stay, naming two records)."""
    _through_gate(params)
    pins = pinned_requirements(params.paths.requirements_lock)
    first = packaging.make_release(params, pins)
    hgb = params.train.hist_gradient_boosting.model_copy(update={"learning_rate": 0.05})
    other = params.model_copy(
        update={"train": params.train.model_copy(update={"hist_gradient_boosting": hgb})}
    )
    # The model files are untouched: the same model, as the tuner's pick would be.
    second = packaging.make_release(other, pins)
    assert second.model_hash == first.model_hash
    assert second.params_hash != first.params_hash
    assert second.bento_version != first.bento_version
    assert second.model_copy(update={"params_hash": first.params_hash}) != first


def _pin_in_archive(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        [name] = [n for n in tar.getnames() if n.endswith("src/mlgitops/serving/pinned.json")]
        return json.loads(tar.extractfile(name).read())


def test_release_json_the_bento_pin_the_store_and_metadata_agree(params):
    import bentoml

    _through_gate(params)
    package.run(params)
    on_disk = json.loads(params.paths.release.read_text())
    release = load_release(params.paths.release)
    pin = _pin_in_archive(params.paths.bento_archive)
    assert pin["release"] == on_disk
    assert (pin["bento_tag"], pin["model_tag"]) == (release.bento_tag, release.model_tag)
    stored = bentoml.bentos.get(release.bento_tag)
    assert stored_pin(stored) == pin
    assert dict(bentoml.models.get(release.model_tag).info.metadata) == on_disk
    meta = _load_served(ReleaseRecord.model_validate(pin["release"])).metadata()
    for field in (
        "model_tag", "model_hash", "model_format", "data_hash", "params_hash", "threshold",
        "threshold_policy", "metrics", "data_until", "image", "mlgitops_version",
    ):  # fmt: skip
        assert meta[field] == on_disk[field], field
    assert meta["bento_tag"] == release.bento_tag
    # Packaging again keeps the stored bento: it carries the same record (test_bento.py: another
    # record under an existing tag is refused).
    package.run(params)
    assert json.loads(params.paths.release.read_text()) == on_disk


def test_the_bento_ships_the_score_reference_and_rules(params):
    from mlgitops.serving.layout import RULES_FILE, SCORE_REFERENCE_FILE

    _through_gate(params)
    pins = pinned_requirements(params.paths.requirements_lock)
    first = packaging.make_release(params, pins)
    # A rules-only change (a monitoring param) is a new bento version.
    params.paths.prometheus_rules.write_text(params.paths.prometheus_rules.read_text() + "# x\n")
    assert packaging.make_release(params, pins).bento_version != first.bento_version
    package.run(params)
    with tarfile.open(params.paths.bento_archive) as archive:
        names = archive.getnames()
        shipped = {
            name.rsplit("/", 1)[-1]: archive.extractfile(name).read()
            for name in names
            if name.endswith((SCORE_REFERENCE_FILE, RULES_FILE))
        }
    assert shipped[SCORE_REFERENCE_FILE] == params.paths.score_reference.read_bytes()
    assert shipped[RULES_FILE] == params.paths.prometheus_rules.read_bytes()


def _onnx_format(params):
    return params.model_copy(
        update={"package": params.package.model_copy(update={"model_format": "onnx"})}
    )


def _load_served(release):
    from mlgitops.config import ServingConfig
    from mlgitops.serving.runtime import Pinned, Runtime

    settings = ServingConfig(prediction_log="off", feedback_log="off")
    runtime = Runtime(Pinned(release.bento_tag, release.model_tag, release), settings)
    runtime.load()
    return runtime


def test_onnx_format_ships_and_serves_the_exported_model(trained) -> None:  # noqa: F811
    """One artifact, one hash: the bento holds export's model.onnx, no pipeline, and the pod
    serves it with the pipeline's scores (all three model types)."""
    import bentoml
    import numpy as np

    from mlgitops.io import file_sha256
    from mlgitops.records import load_model_card
    from mlgitops.serving.features import validate_records
    from mlgitops.serving.layout import MODEL_FILE, ONNX_MODEL_FILE, REFERENCE_SCORES_FILE
    from mlgitops.stages import export

    params = _onnx_format(trained.params)
    export.run(params)
    package.run(params)
    release = load_release(params.paths.release)
    onnx_file = Path(params.paths.export_dir) / ONNX_MODEL_FILE
    assert release.model_format == "onnx"
    assert release.model_hash == f"sha256:{file_sha256(onnx_file)}"
    assert release.source_model_hash == load_model_card(params.paths.model_card).model_hash
    stored = bentoml.models.get(release.model_tag)
    assert Path(stored.path_of(ONNX_MODEL_FILE)).read_bytes() == onnx_file.read_bytes()
    assert Path(stored.path_of(REFERENCE_SCORES_FILE)).is_file()
    assert not Path(stored.path_of(MODEL_FILE)).exists()

    runtime = _load_served(release)
    assert runtime.error is None
    assert runtime.model is not None
    assert runtime.model.scorer.runtime == "onnx-export"
    meta = runtime.metadata()
    assert (meta["model_format"], meta["model_file"]) == ("onnx", "model.onnx")
    assert meta["model_hash"] == release.model_hash
    test = trained.test[trained.pipeline.feature_names_in_].head(300)
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in test.to_dict("records")
    ]
    batch = validate_records(records, runtime.model.space)
    served = runtime.model.scores(batch)
    reference = trained.pipeline.predict_proba(test)[:, 1]
    assert np.max(np.abs(served - reference)) <= 1e-9


def test_onnx_format_refuses_an_export_of_another_pipeline(trained, tmp_path) -> None:  # noqa: F811
    from mlgitops.errors import ArtifactError
    from mlgitops.export import onnx_graph
    from mlgitops.export.extract import from_pipeline
    from mlgitops.serving.layout import ONNX_MODEL_FILE
    from mlgitops.stages import export

    params = _onnx_format(trained.params)
    export.run(params)
    onnx_file = Path(params.paths.export_dir) / ONNX_MODEL_FILE
    original = onnx_file.read_bytes()
    other = from_pipeline(trained.pipeline)
    # The same graph with every leaf (or weight) moved: what a stale export would be.
    if other.model_type == "logistic_regression":
        other.model.slope[:] += 0.5
    else:
        other.model.value[:] += 0.5
    onnx_file.write_bytes(onnx_graph.to_onnx(other, trained.threshold).SerializeToString())
    try:
        with pytest.raises(ArtifactError, match="not an export of"):
            package.run(params)
    finally:
        onnx_file.write_bytes(original)


def test_onnx_format_without_the_export_is_an_artifact_error(params) -> None:
    from mlgitops.errors import ArtifactError

    _through_gate(params)
    with pytest.raises(ArtifactError, match="model.onnx"):
        packaging.make_release(_onnx_format(params), [])
