from __future__ import annotations

import numpy as np
import onnx

from mlgitops.export.extract import from_pipeline
from mlgitops.export.onnx_graph import run, session, to_onnx
from mlgitops.export.tables import columns_of


def test_the_onnx_graph_is_the_whole_pipeline(trained) -> None:
    model = from_pipeline(trained.pipeline)
    proto = to_onnx(model, trained.threshold)
    scores, decisions = run(
        session(proto.SerializeToString()), model, columns_of(trained.test, model.names)
    )
    reference = trained.reference()
    assert np.max(np.abs(scores - reference)) <= 1e-9
    assert np.array_equal(decisions, reference >= trained.threshold)


def test_one_input_per_feature_strings_for_categories(trained) -> None:
    model = from_pipeline(trained.pipeline)
    graph = to_onnx(model, trained.threshold).graph
    kinds = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    assert kinds["country"] == onnx.TensorProto.STRING
    assert kinds["amount"] == onnx.TensorProto.DOUBLE
    assert set(kinds) == set(trained.pipeline.feature_names_in_)
    assert [o.name for o in graph.output] == ["score", "decision"]


def test_same_model_same_bytes(trained) -> None:
    first = to_onnx(from_pipeline(trained.pipeline), trained.threshold).SerializeToString()
    again = to_onnx(from_pipeline(trained.pipeline), trained.threshold).SerializeToString()
    assert first == again
