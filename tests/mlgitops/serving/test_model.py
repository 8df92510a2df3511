"""The compiled scorer reproduces pipeline.predict_proba; bad model files never load."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitops.errors import ArtifactError, ServingError
from mlgitops.io import file_sha256, load_pipeline
from mlgitops.profile import CategoricalProfile, load_profile
from mlgitops.serving.features import FeatureSpace, validate_body
from mlgitops.serving.model import (
    SELF_CHECK_TOLERANCE,
    build_model,
    frame_from_columns,
    probe_records,
    self_check,
    verify_hash,
)
from tests.support.devmodel import CATEGORICAL, NUMERIC, DevArtifacts, dev_data


@pytest.fixture(scope="module")
def dev_model(dev_artifacts: DevArtifacts) -> tuple[Any, Any]:
    pipeline = joblib.load(dev_artifacts.model_file)
    profile = load_profile(dev_artifacts.profile_file)
    return pipeline, build_model(pipeline, profile, 0.2)


def _reference(pipeline: Any, space: FeatureSpace, body: dict[str, Any]) -> np.ndarray:
    batch = validate_body(body, space, 10_000)
    return pipeline.predict_proba(frame_from_columns(space, batch.columns))[:, 1]


def test_hist_gradient_boosting_runs_on_onnx_with_identical_scores(dev_model: Any) -> None:
    pipeline, model = dev_model
    assert model.scorer.runtime == "onnx"
    body = {"records": probe_records(model.profile, 2000, seed=42)}
    scores = model.scores(validate_body(body, model.space, 10_000))
    reference = _reference(pipeline, model.space, body)
    assert np.max(np.abs(scores - reference)) <= 1e-12
    assert self_check(model, pipeline) <= SELF_CHECK_TOLERANCE


def _record_strategy(profile: Any) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, spec in profile.features.items():
        if isinstance(spec, CategoricalProfile):
            value: st.SearchStrategy[Any] = st.one_of(
                st.sampled_from(sorted(spec.frequencies)), st.text(max_size=5)
            )
        else:
            edges = [*spec.bin_edges, spec.min, spec.max]
            value = st.one_of(
                st.sampled_from(edges),
                st.floats(-1e6, 1e6, allow_nan=False),
                st.integers(-1000, 100_000),
            )
        fields[name] = st.one_of(value, st.none()) if spec.missing_rate > 0 else value
    return st.fixed_dictionaries(fields)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_scores_match_pipeline_on_generated_records(dev_model: Any, data: st.DataObject) -> None:
    pipeline, model = dev_model
    records = data.draw(st.lists(_record_strategy(model.profile), min_size=1, max_size=20))
    body = {"records": records}
    scores = model.scores(validate_body(body, model.space, 10_000))
    assert np.max(np.abs(scores - _reference(pipeline, model.space, body))) <= 1e-9


@pytest.mark.parametrize("kind", ["random_forest", "logistic_regression", "hist_gradient_boosting"])
def test_every_pipeline_kind_of_the_train_stage_is_served_exactly(kind: str) -> None:
    from mlgitops.config import RandomForestParams, TrainConfig
    from mlgitops.modeling.pipeline import build_pipeline

    config = TrainConfig(model=kind, random_forest=RandomForestParams(n_estimators=15))
    data = dev_data(3000, seed=11)
    pipeline = build_pipeline(data.schema, config)
    pipeline.fit(data.frame[NUMERIC + CATEGORICAL], data.frame["is_fraud"].to_numpy())
    profile = data.profile
    model = build_model(pipeline, profile, 0.5)
    body = {"records": probe_records(profile, 500, seed=3)}
    scores = model.scores(validate_body(body, model.space, 10_000))
    assert np.max(np.abs(scores - _reference(pipeline, model.space, body))) <= 1e-9
    # Every family the train stage builds takes the compiled fast path (export's IR and graph).
    assert model.scorer.runtime == "onnx"


def test_corrupted_model_file_is_refused(dev_artifacts: DevArtifacts, tmp_path: Path) -> None:
    broken = tmp_path / "model.joblib"
    data = bytearray(dev_artifacts.model_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64
    broken.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match"):
        verify_hash(broken, str(dev_artifacts.metadata["model_hash"]))
    broken.write_bytes(b"not a pickle")
    verify_hash(broken, f"sha256:{file_sha256(broken)}")
    with pytest.raises(ArtifactError, match="cannot load"):
        load_pipeline(broken)


def test_a_model_that_predicts_garbage_fails_the_self_check(dev_model: Any) -> None:
    _pipeline, model = dev_model

    class Broken:
        def __len__(self) -> int:
            return 1

        def __getitem__(self, item: Any) -> Any:
            return self

        def predict_proba(self, frame: Any) -> np.ndarray:
            return np.full((len(frame), 2), math.nan)

    with pytest.raises(ServingError, match="self-check"):
        build_model(Broken(), model.profile, 0.2)


@pytest.fixture(scope="module")
def exported(dev_model: Any) -> tuple[bytes, dict[str, Any]]:
    """The export stage's graph of the dev pipeline and the pipeline's reference scores."""
    from mlgitops.export import onnx_graph
    from mlgitops.export.extract import from_pipeline
    from mlgitops.serving.model import reference_scores

    pipeline, model = dev_model
    graph = onnx_graph.to_onnx(from_pipeline(pipeline), 0.2).SerializeToString()
    return graph, reference_scores(pipeline, model.profile)


def test_the_exported_graph_serves_the_pipelines_scores(dev_model: Any, exported) -> None:
    from mlgitops.serving.model import build_exported_model

    pipeline, model = dev_model
    graph, reference = exported
    served = build_exported_model(graph, model.profile, 0.2, reference)
    assert served.scorer.runtime == "onnx-export"
    assert served.self_check_difference <= 1e-12
    # Unseen, missing and "" categories included (the reference's last record is all "").
    body = {"records": [*probe_records(model.profile, 500, seed=3), reference["records"][-1]]}
    scores = served.scores(validate_body(body, served.space, 10_000))
    assert np.max(np.abs(scores - _reference(pipeline, model.space, body))) <= 1e-12


def test_the_exported_graph_never_loads_against_other_scores(dev_model: Any, exported) -> None:
    from mlgitops.serving.model import build_exported_model

    _, model = dev_model
    graph, reference = exported
    moved = {**reference, "scores": [min(1.0, s + 1e-3) for s in reference["scores"]]}
    with pytest.raises(ServingError, match="self-check"):
        build_exported_model(graph, model.profile, 0.2, moved)
    with pytest.raises(ArtifactError, match="reference scores"):
        build_exported_model(graph, model.profile, 0.2, {"records": [], "scores": []})
    with pytest.raises(ArtifactError, match="inputs"):
        build_exported_model(graph, _without_a_feature(model.profile), 0.2, reference)


def _without_a_feature(profile: Any) -> Any:
    features = dict(profile.features)
    features.pop(next(iter(features)))
    return profile.model_copy(update={"features": features})
