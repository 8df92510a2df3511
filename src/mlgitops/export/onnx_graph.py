"""ExportModel -> ONNX: the one compiler of the fitted pipeline's model to a graph.

`to_onnx` is the export stage's self-contained graph: raw feature columns in, score and decision
out. Layout (docs/export.md): one input per feature, shape [N, 1]; numeric features are
tensor(double) with NaN for missing, categorical ones tensor(string) with "" for missing.
Outputs `score` (double [N, 1], the positive-class probability) and `decision`
(bool [N, 1], score >= the operating threshold less 1e-12, see ir.DECISION_GUARD).

`scoring_graph` is the same model after the encoding: input `X`, the matrix `ir.Encoder` makes
(double [N, inputs]), output `score`. The serving fast path runs it, encoding in Python, which
for one row costs less than the graph's string lookups.

Everything runs in float64, so the splits are the pipeline's own and categorical splits are exact
sets (ai.onnx.ml TreeEnsemble, which takes float64 thresholds and leaf values: opset 5).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlgitops.export.ir import (
    LEAF,
    MISSING_CATEGORY,
    CategoricalInput,
    ExportModel,
    Linear,
    NumericInput,
    Trees,
    decision_threshold,
)

# The one session factory; callers of this module's `run` take it from here.
from mlgitops.export.ort import session as session

OPSETS = [helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
IR_VERSION = 10
# The encoded matrix, input of `scoring_graph`.
ENCODED = "X"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: Any, dtype: Any = np.float64) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, domain: str = "", **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=out, domain=domain, **attrs)
        )
        return out


def _encode(g: _Graph, spec: NumericInput | CategoricalInput) -> str:
    if isinstance(spec, NumericInput):
        x = spec.name
        if not math.isnan(spec.missing):
            fill = g.const("fill", [[spec.missing]])
            x = g.op("Where", [g.op("IsNaN", [x], "isnan"), fill, x], "imputed")
        if spec.float32:
            # RandomForest compares float32 inputs with float64 thresholds.
            x = g.op("Cast", [g.op("Cast", [x], "f32", to=TensorProto.FLOAT)], "f64", to=11)
        return x
    k = len(spec.categories)
    index = g.op(
        "LabelEncoder",
        [spec.name],
        "index",
        domain="ai.onnx.ml",
        keys_strings=[*spec.categories, MISSING_CATEGORY],
        values_int64s=[*range(k), k + 1],
        default_int64=k,
    )
    table = g.const("table", [*spec.values, spec.unknown, spec.missing])
    return g.op("Gather", [table, index], "encoded", axis=0)


def _tree_ensemble(g: _Graph, x: str, trees: Trees) -> str:
    feature: list[int] = []
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
    leaf_id: dict[int, int] = {}

    def leaf(node: int) -> int:
        if node not in leaf_id:
            leaf_id[node] = len(weights)
            weights.append(float(trees.value[node]))
        return leaf_id[node]

    for root in trees.roots:
        # Interior nodes of one tree, in depth-first order; ids are global to the ensemble.
        order, stack = [], [int(root)]
        while stack:
            node = stack.pop()
            if trees.feature[node] != LEAF:
                order.append(node)
                stack.extend([int(trees.right[node]), int(trees.left[node])])
        node_id = {n: len(feature) + i for i, n in enumerate(order)}
        roots.append(len(feature))
        if not order:
            # A single-leaf tree: one split whose both branches reach the leaf.
            feature.append(0)
            splits.append(0.0)
            modes.append(0)
            true_leaf.append(1)
            false_leaf.append(1)
            true_ids.append(leaf(int(root)))
            false_ids.append(leaf(int(root)))
            missing_true.append(1)
            continue
        for node in order:
            feature.append(int(trees.feature[node]))
            if trees.categorical[node]:
                modes.append(6)  # BRANCH_MEMBER: in the set -> true (left)
                splits.append(0.0)
                # An empty set (only missing values go left) becomes one no code can match.
                members.extend(float(c) for c in sorted(trees.cat_sets[node]) or [-1])
                members.append(math.nan)
            else:
                modes.append(0)  # BRANCH_LEQ: x <= threshold -> true (left)
                splits.append(float(trees.threshold[node]))
            for child, ids, is_leaf in (
                (int(trees.left[node]), true_ids, true_leaf),
                (int(trees.right[node]), false_ids, false_leaf),
            ):
                child_is_leaf = trees.feature[child] == LEAF
                is_leaf.append(int(child_is_leaf))
                ids.append(leaf(child) if child_is_leaf else node_id[child])
            missing_true.append(int(trees.missing_left[node]))
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
        # A forest averages its trees (AVG), boosting adds them (SUM) before base and sigmoid.
        "aggregate_function": 0 if trees.aggregate == "mean" else 1,
        "post_transform": 0,  # NONE
    }
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.array(members, np.float64))
    raw = g.op("TreeEnsemble", [x], "raw", domain="ai.onnx.ml", **attrs)
    if trees.aggregate == "mean":
        return raw
    return g.op("Sigmoid", [g.op("Add", [raw, g.const("base", [[trees.base]])], "logit")], "p")


def _linear(g: _Graph, x: str, linear: Linear) -> str:
    # A categorical column already holds its logit contribution (slope 1, offset 0, never NaN).
    affine = g.op(
        "Add",
        [g.op("Mul", [x, g.const("slope", [linear.slope])], "wx"), g.const("b", [linear.offset])],
        "term",
    )
    missing = g.const("missing_term", [linear.missing_term])
    terms = g.op("Where", [g.op("IsNaN", [x], "isnan"), missing, affine], "terms")
    total = g.op("ReduceSum", [terms, g.const("axis", [1], np.int64)], "sum", keepdims=1)
    logit = g.op("Add", [total, g.const("intercept", [[linear.intercept]])], "logit")
    return g.op("Sigmoid", [logit], "p")


def _score(g: _Graph, x: str, model: ExportModel) -> str:
    """The positive-class probability [N, 1] of the encoded matrix `x`."""
    if isinstance(model.model, Trees):
        return _tree_ensemble(g, x, model.model)
    return _linear(g, x, model.model)


def _model(
    g: _Graph, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.initializers)
    proto = helper.make_model(graph, opset_imports=OPSETS, producer_name="mlgitops")
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model: ExportModel, threshold: float) -> onnx.ModelProto:
    g = _Graph()
    encoded = [_encode(g, spec) for spec in model.inputs]
    p = _score(g, g.op("Concat", encoded, "X", axis=1), model)
    g.nodes.append(helper.make_node("Identity", [p], ["score"], name="score"))
    decision = g.const("threshold", [[decision_threshold(threshold)]])
    g.nodes.append(
        helper.make_node("GreaterOrEqual", ["score", decision], ["decision"], name="decision")
    )
    inputs = [
        helper.make_tensor_value_info(
            spec.name,
            TensorProto.DOUBLE if isinstance(spec, NumericInput) else TensorProto.STRING,
            ["N", 1],
        )
        for spec in model.inputs
    ]
    outputs = [
        helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["N", 1]),
        helper.make_tensor_value_info("decision", TensorProto.BOOL, ["N", 1]),
    ]
    return _model(g, model.model_type, inputs, outputs)


def scoring_graph(model: ExportModel) -> onnx.ModelProto:
    """The model after the encoding: `X` (double [N, len(model.inputs)], as `ir.Encoder` makes
    it) in, `score` (double [N, 1]) out."""
    g = _Graph()
    p = _score(g, ENCODED, model)
    g.nodes.append(helper.make_node("Identity", [p], ["score"], name="score"))
    width = len(model.inputs)
    inputs = [helper.make_tensor_value_info(ENCODED, TensorProto.DOUBLE, ["N", width])]
    outputs = [helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["N", 1])]
    return _model(g, model.model_type, inputs, outputs)


def feeds(model: ExportModel, columns: list[list[object]]) -> dict[str, np.ndarray]:
    """The ONNX inputs for raw columns (None or NaN = missing)."""
    out: dict[str, np.ndarray] = {}
    for spec, column in zip(model.inputs, columns, strict=True):
        if isinstance(spec, NumericInput):
            values = [math.nan if v is None else v for v in column]
            out[spec.name] = np.array(values, dtype=np.float64).reshape(-1, 1)
        else:
            values = [
                MISSING_CATEGORY if v is None or (isinstance(v, float) and math.isnan(v)) else v
                for v in column
            ]
            out[spec.name] = np.array(values, dtype=object).reshape(-1, 1)
    return out


def run(
    sess: Any, model: ExportModel, columns: list[list[object]]
) -> tuple[np.ndarray, np.ndarray]:
    score, decision = sess.run(["score", "decision"], feeds(model, columns))
    return score[:, 0], decision[:, 0]
