"""A fitted binary HistGradientBoostingClassifier as one float64 ONNX model.

The trees become one `TreeEnsemble` node (same thresholds, same leaf values, NaN routing and
categorical sets), followed by the baseline and the sigmoid, so the model maps the estimator's
input matrix straight to the positive-class probability. The serving fast path runs it with ONNX
Runtime; an export can write it as it is (`model.SerializeToString()`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from onnx import ModelProto

INPUT = "X"
OUTPUT = "probability"
# TreeEnsemble, which takes float64 thresholds and leaf values, is ai.onnx.ml opset 5.
_OPSETS = (("", 21), ("ai.onnx.ml", 5))
_IR_VERSION = 10


def _bitset_members(words: np.ndarray) -> list[float]:
    return [
        float(w * 32 + b) for w, word in enumerate(words) for b in range(32) if (int(word) >> b) & 1
    ]


def _estimator(model: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    estimator = model[-1] if isinstance(model, Pipeline) else model
    if not isinstance(estimator, HistGradientBoostingClassifier):
        return None
    if getattr(estimator, "n_trees_per_iteration_", 0) != 1 or len(estimator.classes_) != 2:
        return None
    if type(estimator._loss).__name__ != "HalfBinomialLoss":
        return None
    return estimator


def compile_model(model: Any) -> ModelProto | None:
    """The ONNX model of a fitted binary HistGradientBoostingClassifier (or of a Pipeline ending
    in one), else None.

    Input `X` (float64, n x n_features_in_) is what the estimator itself receives: for a
    Pipeline, the output of its preprocessing steps, then the estimator's own categorical
    preprocessing (`estimator._preprocessor`, when it has one). Output `probability`
    (float64, n x 1) is `predict_proba(...)[:, 1]`.
    """
    estimator = _estimator(model)
    if estimator is None:
        return None
    from onnx import TensorProto, helper, numpy_helper

    constant = float(estimator._baseline_prediction.ravel()[0])
    feat: list[int] = []
    splits: list[float] = []
    modes: list[int] = []
    true_ids: list[int] = []
    true_leaf: list[int] = []
    false_ids: list[int] = []
    false_leaf: list[int] = []
    missing_true: list[int] = []
    members: list[float] = []
    roots: list[int] = []
    weights: list[float] = []
    for (predictor,) in estimator._predictors:
        nodes = predictor.nodes
        if nodes[0]["is_leaf"]:
            constant += float(nodes[0]["value"])
            continue
        leaf_ids: dict[int, int] = {}
        node_ids: dict[int, int] = {}
        for i in range(len(nodes)):
            if nodes[i]["is_leaf"]:
                leaf_ids[i] = len(weights)
                weights.append(float(nodes[i]["value"]))
            else:
                node_ids[i] = len(feat) + len(node_ids)
        roots.append(node_ids[0])
        for i in sorted(node_ids, key=node_ids.__getitem__):
            node = nodes[i]
            feat.append(int(node["feature_idx"]))
            if node["is_categorical"]:
                modes.append(6)  # BRANCH_MEMBER: in the left set -> true (left)
                splits.append(0.0)
                left_set = _bitset_members(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
                # Only missing values go left: a set nothing matches (codes are >= 0).
                members.extend(left_set or [-1.0])
                members.append(math.nan)
            else:
                modes.append(0)  # BRANCH_LEQ, as sklearn: x <= threshold -> left
                splits.append(float(node["num_threshold"]))
            left, right = int(node["left"]), int(node["right"])
            true_leaf.append(int(bool(nodes[left]["is_leaf"])))
            true_ids.append(leaf_ids[left] if nodes[left]["is_leaf"] else node_ids[left])
            false_leaf.append(int(bool(nodes[right]["is_leaf"])))
            false_ids.append(leaf_ids[right] if nodes[right]["is_leaf"] else node_ids[right])
            missing_true.append(int(bool(node["missing_go_to_left"])))
    if not roots:
        return None
    # Baseline and sigmoid follow as separate nodes.
    attrs = tree_ensemble_attributes(
        feature=feat,
        splits=splits,
        modes=modes,
        true_ids=true_ids,
        true_leaf=true_leaf,
        false_ids=false_ids,
        false_leaf=false_leaf,
        missing_true=missing_true,
        roots=roots,
        weights=weights,
        members=members,
        aggregate="sum",
    )
    baseline = numpy_helper.from_array(np.array([constant], np.float64), "baseline")
    nodes_ = [
        helper.make_node("TreeEnsemble", [INPUT], ["trees"], domain="ai.onnx.ml", **attrs),
        helper.make_node("Add", ["trees", "baseline"], ["margin"]),
        helper.make_node("Sigmoid", ["margin"], [OUTPUT]),
    ]
    n_features = int(estimator.n_features_in_)
    graph = helper.make_graph(
        nodes_,
        "hist_gradient_boosting",
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, [None, 1])],
        initializer=[baseline],
    )
    opsets = [helper.make_opsetid(domain, version) for domain, version in _OPSETS]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="mlgitops")
    onnx_model.ir_version = _IR_VERSION
    return onnx_model


def inference_session(model: ModelProto | bytes) -> Any:
    """An ONNX Runtime session for one request at a time on one thread (a model or its bytes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One request at a time per worker: intra-op threads would only fight the event loop.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def tree_ensemble_attributes(
    *,
    feature: list[int],
    splits: list[float],
    modes: list[int],
    true_ids: list[int],
    true_leaf: list[int],
    false_ids: list[int],
    false_leaf: list[int],
    missing_true: list[int],
    roots: list[int],
    weights: list[float],
    members: list[float],
    aggregate: str,
) -> dict[str, Any]:
    """The attributes of one ai.onnx.ml TreeEnsemble (opset 5) node from its flat node tables:
    one target, no post transform, `aggregate` "sum" (boosting) or "mean" (a forest)."""
    from onnx import numpy_helper

    attrs: dict[str, Any] = {
        "nodes_featureids": feature,
        "nodes_splits": numpy_helper.from_array(np.array(splits, np.float64)),
        "nodes_modes": numpy_helper.from_array(np.array(modes, np.uint8)),
        "nodes_truenodeids": true_ids,
        "nodes_trueleafs": true_leaf,
        "nodes_falsenodeids": false_ids,
        "nodes_falseleafs": false_leaf,
        "nodes_missing_value_tracks_true": missing_true,
        "tree_roots": roots,
        "leaf_targetids": [0] * len(weights),
        "leaf_weights": numpy_helper.from_array(np.array(weights, np.float64)),
        "n_targets": 1,
        "aggregate_function": {"mean": 0, "sum": 1}[aggregate],  # AVG or SUM
        "post_transform": 0,  # NONE
    }
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.array(members, np.float64))
    return attrs
