from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from mlgitops.errors import ArtifactError
from mlgitops.export.extract import from_pipeline
from mlgitops.export.ir import Encoder, encode
from mlgitops.export.onnx_graph import ENCODED, run, scoring_graph, session, to_onnx
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


def test_the_scoring_graph_reproduces_predict_proba_from_the_encoded_matrix(trained) -> None:
    # What the serving fast path runs: ir.Encoder in Python, then the graph after the encoding.
    model = from_pipeline(trained.pipeline)
    proto = scoring_graph(model)
    onnx.checker.check_model(proto, full_check=True)
    x = Encoder(model.inputs)(columns_of(trained.test, model.names))
    scores = session(proto).run(None, {ENCODED: x})[0][:, 0]
    tolerance = 1e-12 if model.model_type == "hist_gradient_boosting" else 1e-9
    assert np.max(np.abs(scores - trained.reference())) <= tolerance


def test_the_encoder_reads_columns_in_the_callers_order(trained) -> None:
    model = from_pipeline(trained.pipeline)
    columns = columns_of(trained.test, model.names)
    order = list(reversed(range(len(columns))))
    shuffled = [columns[j] for j in order]
    positions = [order.index(j) for j in range(len(columns))]
    for rows in (1, 16, 17, len(trained.test)):  # the row path and the column path
        head = [c[:rows] for c in columns]
        moved = [c[:rows] for c in shuffled]
        expected = encode(model.inputs, head)
        assert np.array_equal(Encoder(model.inputs, positions)(moved), expected, equal_nan=True)
        assert np.array_equal(Encoder(model.inputs)(head), expected, equal_nan=True)


def test_a_model_the_ir_cannot_read_is_refused_in_one_line() -> None:
    x, _ = _data()
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    multi = Pipeline(
        [
            ("preprocess", ColumnTransformer([("num", "passthrough", ["a", "b", "c"])])),
            ("model", HistGradientBoostingClassifier(max_iter=3)),
        ]
    ).fit(frame, np.arange(400) % 3)
    with pytest.raises(ArtifactError, match="binary"):
        from_pipeline(multi)


def test_a_bare_boosting_model_with_categorical_codes_compiles_exactly() -> None:
    x, y = _data()
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    frame["c"] = frame["c"].map(lambda v: f"code{int(v)}").astype(object)
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("num", "passthrough", ["a", "b"]),
                        (
                            "cat",
                            OrdinalEncoder(
                                handle_unknown="use_encoded_value", unknown_value=np.nan
                            ),
                            ["c"],
                        ),
                    ]
                ),
            ),
            (
                "model",
                HistGradientBoostingClassifier(
                    max_iter=30, categorical_features=[False, False, True], random_state=0
                ),
            ),
        ]
    ).fit(frame, y)
    model = from_pipeline(pipeline)
    x_encoded = Encoder(model.inputs)(columns_of(frame, model.names))
    scores = session(scoring_graph(model)).run(None, {ENCODED: x_encoded})[0][:, 0]
    assert np.max(np.abs(scores - pipeline.predict_proba(frame)[:, 1])) <= 1e-12


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 2] = rng.integers(0, 5, size=400)
    y = (np.nan_to_num(x[:, 0]) + (x[:, 2] == 3) > 0.5).astype(int)
    return x, y
