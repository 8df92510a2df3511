"""Fitted scikit-learn Pipeline -> ExportModel, by reading the fitted objects, not by guessing.

Category tables come from running each fitted encoder on every category it knows plus one it
cannot know and a missing value, so `min_frequency`, `max_categories`, infrequent grouping and
unknown/missing handling are exactly the encoder's own. Anything unrecognised is an error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.errors import ArtifactError
from mlgitops.export.ir import (
    LEAF,
    UNSEEN,
    CategoricalInput,
    ExportModel,
    Input,
    Linear,
    NumericInput,
    Trees,
)


def _steps(transformer: Any) -> list[Any]:
    return (
        [step for _, step in transformer.steps] if hasattr(transformer, "steps") else [transformer]
    )


def _known(categories: np.ndarray) -> list[str]:
    known = [c for c in categories if not (isinstance(c, float) and math.isnan(c))]
    bad = [c for c in known if not isinstance(c, str)]
    if bad:
        raise ArtifactError(
            f"categories must be strings, found {bad[0]!r} ({type(bad[0]).__name__})"
        )
    if "" in known:
        raise ArtifactError("the empty string is a category; exports use it for 'missing'")
    return sorted(known)


def _probe(transformer: Any, columns: list[str], known: list[list[str]]) -> np.ndarray:
    """transformer.transform on rows [known..., UNSEEN, NaN] per column (shorter lists padded)."""
    rows = max(len(k) for k in known) + 2
    data = {}
    for name, cats in zip(columns, known, strict=True):
        pad = cats[0] if cats else UNSEEN
        data[name] = np.array(
            [*cats, *[pad] * (rows - 2 - len(cats)), UNSEEN, np.nan], dtype=object
        )
    out = transformer.transform(pd.DataFrame(data))
    return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float64)


def _categorical_codes(transformer: Any, columns: list[str]) -> list[CategoricalInput]:
    encoder = _steps(transformer)[-1]
    known = [_known(c) for c in encoder.categories_]
    out = _probe(transformer, columns, known)
    if out.shape[1] != len(columns):
        raise ArtifactError(f"{type(encoder).__name__}: expected one output column per feature")
    return [
        CategoricalInput(
            name=name,
            categories=tuple(cats),
            values=tuple(float(v) for v in out[: len(cats), j]),
            unknown=float(out[-2, j]),
            missing=float(out[-1, j]),
        )
        for j, (name, cats) in enumerate(zip(columns, known, strict=True))
    ]


def _numeric_missing(transformer: Any, n: int) -> list[float]:
    # A fitted ColumnTransformer stores "passthrough" as a FunctionTransformer without func.
    if transformer == "passthrough" or (
        type(transformer).__name__ == "FunctionTransformer" and transformer.func is None
    ):
        return [math.nan] * n
    steps = _steps(transformer)
    if (
        len(steps) == 1
        and type(steps[0]).__name__ == "SimpleImputer"
        and not steps[0].add_indicator
    ):
        # keep_empty_features imputes an all-missing training column with 0.
        return [0.0 if math.isnan(s) else float(s) for s in steps[0].statistics_]
    raise ArtifactError(f"unsupported numeric transformer {type(transformer).__name__} for trees")


def _tree_inputs(preprocess: Any, float32: bool) -> list[Input]:
    inputs: list[Input] = []
    for name, transformer, columns in preprocess.transformers_:
        if transformer == "drop" or len(columns) == 0:
            continue
        columns = list(columns)
        if preprocess.output_indices_[name].start != len(inputs):
            raise ArtifactError(f"transformer {name!r}: unexpected output layout")
        if type(_steps(transformer)[-1]).__name__ == "OrdinalEncoder":
            for spec in _categorical_codes(transformer, columns):
                inputs.append(spec)
        else:
            missing = _numeric_missing(transformer, len(columns))
            inputs.extend(
                NumericInput(c, m, float32) for c, m in zip(columns, missing, strict=True)
            )
    return inputs


def _through_inner(inputs: list[Input], inner: Any) -> list[Input]:
    """Compose the HGB's own preprocessor (it re-encodes categorical codes, and puts them first).

    Probed like the pipeline's encoders: each outer code, unknown and missing value goes through
    the fitted inner transformer, so the composition is the estimator's own.
    """
    if inner is None:
        return inputs
    order: list[int] = []
    for _, _, mask in inner.transformers_:
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        order.extend(int(i) for i in idx)
    if sorted(order) != list(range(len(inputs))):
        raise ArtifactError("HistGradientBoosting preprocessor: unexpected column layout")
    cats = [s for s in inputs if isinstance(s, CategoricalInput)]
    rows = max((len(c.values) + 2 for c in cats), default=1)
    probe = np.zeros((rows, len(inputs)))
    for j, spec in enumerate(inputs):
        if isinstance(spec, CategoricalInput):
            column = [*spec.values, spec.unknown, spec.missing]
            probe[:, j] = column + [column[0]] * (rows - len(column))
        else:
            probe[:, j] = np.arange(rows) + 0.5  # numeric columns must pass through unchanged
    out = np.asarray(inner.transform(probe), dtype=np.float64)
    result: list[Input] = []
    for k, j in enumerate(order):
        spec = inputs[j]
        if isinstance(spec, CategoricalInput):
            n = len(spec.values)
            result.append(
                CategoricalInput(
                    spec.name,
                    spec.categories,
                    tuple(float(v) for v in out[:n, k]),
                    float(out[n, k]),
                    float(out[n + 1, k]),
                )
            )
        else:
            if not np.array_equal(out[:, k], probe[:, j]):
                raise ArtifactError(f"HistGradientBoosting preprocessor changes {spec.name!r}")
            result.append(spec)
    return result


def _bitset_members(words: np.ndarray) -> frozenset[int]:
    return frozenset(
        w * 32 + b for w, word in enumerate(words) for b in range(32) if (int(word) >> b) & 1
    )


class _Builder:
    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {
            k: []
            for k in (
                *("feature", "threshold", "categorical", "cat_sets"),
                *("missing_left", "left", "right", "value"),
            )
        }
        self.roots: list[int] = []

    def add(self, **node: Any) -> None:
        for key, column in self.cols.items():
            column.append(node[key])

    def build(self, aggregate: str, base: float) -> Trees:
        c = self.cols
        return Trees(
            feature=np.array(c["feature"], np.int32),
            threshold=np.array(c["threshold"], np.float64),
            categorical=np.array(c["categorical"], bool),
            cat_sets=tuple(c["cat_sets"]),
            missing_left=np.array(c["missing_left"], bool),
            left=np.array(c["left"], np.int32),
            right=np.array(c["right"], np.int32),
            value=np.array(c["value"], np.float64),
            roots=np.array(self.roots, np.int32),
            aggregate=aggregate,  # type: ignore[arg-type]
            base=base,
        )


def _hgb_trees(estimator: Any) -> Trees:
    if (
        estimator.n_trees_per_iteration_ != 1
        or type(estimator._loss).__name__ != "HalfBinomialLoss"
    ):
        raise ArtifactError("only binary HistGradientBoostingClassifier models can be exported")
    builder = _Builder()
    for (predictor,) in estimator._predictors:
        nodes, offset = predictor.nodes, len(builder.cols["feature"])
        builder.roots.append(offset)
        for node in nodes:
            leaf = bool(node["is_leaf"])
            cat = bool(node["is_categorical"]) and not leaf
            builder.add(
                feature=LEAF if leaf else int(node["feature_idx"]),
                threshold=0.0 if leaf or cat else float(node["num_threshold"]),
                categorical=cat,
                cat_sets=_bitset_members(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
                if cat
                else frozenset(),
                missing_left=bool(node["missing_go_to_left"]),
                left=offset + int(node["left"]) if not leaf else LEAF,
                right=offset + int(node["right"]) if not leaf else LEAF,
                value=float(node["value"]) if leaf else 0.0,
            )
    return builder.build("logit", float(np.ravel(estimator._baseline_prediction)[0]))


def _forest_trees(estimator: Any) -> Trees:
    builder = _Builder()
    for tree in (e.tree_ for e in estimator.estimators_):
        offset = len(builder.cols["feature"])
        builder.roots.append(offset)
        counts = tree.value[:, 0, :]
        total = counts.sum(axis=1)
        # As DecisionTreeClassifier.predict_proba normalises a leaf's class weights.
        proba = counts[:, 1] / np.where(total == 0.0, 1.0, total)
        missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, np.uint8))
        for i in range(tree.node_count):
            leaf = tree.children_left[i] == -1
            builder.add(
                feature=LEAF if leaf else int(tree.feature[i]),
                threshold=0.0 if leaf else float(tree.threshold[i]),
                categorical=False,
                cat_sets=frozenset(),
                missing_left=bool(missing_left[i]),
                left=LEAF if leaf else offset + int(tree.children_left[i]),
                right=LEAF if leaf else offset + int(tree.children_right[i]),
                value=float(proba[i]) if leaf else 0.0,
            )
    return builder.build("mean", 0.0)


def _linear(preprocess: Any, estimator: Any, coef: np.ndarray | None) -> tuple[list[Input], Linear]:
    w = np.asarray(estimator.coef_, np.float64).ravel() if coef is None else coef
    inputs: list[Input] = []
    slope: list[float] = []
    offset: list[float] = []
    missing_term: list[float] = []
    for name, transformer, columns in preprocess.transformers_:
        if transformer == "drop" or len(columns) == 0:
            continue
        columns, block = list(columns), preprocess.output_indices_[name]
        steps = _steps(transformer)
        kinds = [type(s).__name__ for s in steps]
        if kinds == ["SimpleImputer", "OneHotEncoder"]:
            imputer, encoder = steps
            known = [_known(c) for c in encoder.categories_]
            # The imputer turns NaN into its fill value: a category like any other to the encoder.
            probed = known
            del imputer
            out = _probe(transformer, columns, probed)
            widths = list(encoder._n_features_outs)
            edges = np.concatenate([[0], np.cumsum(widths)]) + block.start
            for j, (column, cats) in enumerate(zip(columns, probed, strict=True)):
                contrib = (
                    out[:, edges[j] - block.start : edges[j + 1] - block.start]
                    @ w[edges[j] : edges[j + 1]]
                )
                inputs.append(
                    CategoricalInput(
                        name=column,
                        categories=tuple(cats),
                        values=tuple(float(v) for v in contrib[: len(cats)]),
                        unknown=float(contrib[-2]),
                        missing=float(contrib[-1]),
                    )
                )
                slope.append(1.0)
                offset.append(0.0)
                missing_term.append(float(contrib[-1]))
        elif kinds == ["SimpleImputer", "StandardScaler"]:
            imputer, scaler = steps
            n = len(columns)
            median = np.nan_to_num(np.asarray(imputer.statistics_, np.float64), nan=0.0)
            indicated = list(imputer.indicator_.features_) if imputer.add_indicator else []
            mean = scaler.mean_ if scaler.with_mean else np.zeros(len(scaler.scale_))
            scale = scaler.scale_ if scaler.with_std else np.ones(len(mean))
            wb = w[block]
            for j, column in enumerate(columns):
                a = wb[j] / scale[j]
                const0 = const1 = 0.0
                if j in indicated:
                    k = n + indicated.index(j)
                    const0 = wb[k] * (0.0 - mean[k]) / scale[k]
                    const1 = wb[k] * (1.0 - mean[k]) / scale[k]
                inputs.append(NumericInput(column, math.nan))
                slope.append(a)
                offset.append(const0 - a * mean[j])
                missing_term.append(wb[j] * (median[j] - mean[j]) / scale[j] + const1)
        else:
            raise ArtifactError(f"unsupported transformer {name!r} ({' + '.join(kinds)})")
    model = Linear(
        slope=np.array(slope),
        offset=np.array(offset),
        missing_term=np.array(missing_term),
        intercept=float(np.ravel(estimator.intercept_)[0]),
    )
    return inputs, model


def from_pipeline(pipeline: Any, coef: np.ndarray | None = None) -> ExportModel:
    """The ExportModel of a fitted Pipeline([("preprocess", ColumnTransformer), ("model", ...)]).

    `coef` replaces a linear model's coefficients (the quantized model reuses the extraction).
    """
    if len(pipeline) != 2 or not hasattr(pipeline[0], "transformers_"):
        raise ArtifactError("expected Pipeline(ColumnTransformer, estimator)")
    preprocess, estimator = pipeline[0], pipeline[-1]
    if list(getattr(estimator, "classes_", [])) != [0, 1]:
        raise ArtifactError("expected a binary classifier with classes [0, 1]")
    kind = type(estimator).__name__
    if kind == "HistGradientBoostingClassifier":
        inner = getattr(estimator, "_preprocessor", None)
        inputs = _through_inner(_tree_inputs(preprocess, False), inner)
        return ExportModel("hist_gradient_boosting", tuple(inputs), _hgb_trees(estimator))
    if kind == "RandomForestClassifier":
        return ExportModel(
            "random_forest", tuple(_tree_inputs(preprocess, True)), _forest_trees(estimator)
        )
    if kind == "LogisticRegression":
        inputs, model = _linear(preprocess, estimator, coef)
        return ExportModel("logistic_regression", tuple(inputs), model)
    raise ArtifactError(f"cannot export a {kind}")
