"""The exportable form of a fitted pipeline: per-feature encodings, then trees or a linear model.

Inputs are raw feature values (float or NaN for numeric, str or None for categorical). Each
feature is first encoded to one float64 (`NumericInput`, `CategoricalInput`); the model then
reads the encoded vector. The numpy evaluators here are the reference the other runtimes match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

# min_expected_cost picks a test score as the threshold, so one row sits exactly on it; exported
# runtimes round differently (~1e-16), and that row must not flip. Every exported runtime
# decides `score >= threshold - DECISION_GUARD`; the parity gate counts any flip this allows.
DECISION_GUARD = 1e-12

# Categorical splits send a code left when it is in the node's set; leaf nodes have feature -1.
LEAF = -1

# A category no client can send: what a fitted encoder does with it is its "unknown" handling
# (extraction probes with it; serving maps a client's "" to it for the exported graph).
UNSEEN = "\x00mlgitops-unseen\x00"

# What a string input of the exported graph holds for a missing category (so "" is no category:
# extraction refuses it, and serving sends a client's "" as UNSEEN).
MISSING_CATEGORY = ""

# Batches up to this size are encoded row by row in Python, larger ones column by column in numpy.
SMALL_BATCH = 16


@dataclass(frozen=True)
class NumericInput:
    name: str
    # What a missing value becomes; NaN means it stays missing (the trees route it).
    missing: float
    # RandomForest compares float32(x) with float64 thresholds: the cast is part of the model.
    float32: bool = False


@dataclass(frozen=True)
class CategoricalInput:
    name: str
    # Known categories, sorted, and what each encodes to (a code, or a logit contribution).
    categories: tuple[str, ...]
    values: tuple[float, ...]
    unknown: float
    missing: float

    def lookup(self) -> dict[str, float]:
        return dict(zip(self.categories, self.values, strict=True))


Input = NumericInput | CategoricalInput


@dataclass(frozen=True)
class Trees:
    """Flat node arrays of all trees; node ids are global, `roots[t]` is tree t's root."""

    feature: np.ndarray  # int32, LEAF for leaves
    threshold: np.ndarray  # float64; go left iff x <= threshold (numeric nodes)
    categorical: np.ndarray  # bool; go left iff code in cat_sets[node]
    cat_sets: tuple[frozenset[int], ...]  # per node, empty for numeric nodes and leaves
    missing_left: np.ndarray  # bool; where NaN goes
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    value: np.ndarray  # float64 leaf values (0 for interior nodes)
    roots: np.ndarray  # int32
    # "logit": score = expit(base + sum of leaves); "mean": score = mean of leaves.
    aggregate: Literal["logit", "mean"]
    base: float

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def prefix(self, k: int) -> Trees:
        """The first k trees (node arrays are kept; unreachable nodes cost only space)."""
        end = int(self.roots[k]) if k < self.n_trees else len(self.feature)
        cut = slice(0, end)
        return Trees(
            feature=self.feature[cut],
            threshold=self.threshold[cut],
            categorical=self.categorical[cut],
            cat_sets=self.cat_sets[:end],
            missing_left=self.missing_left[cut],
            left=self.left[cut],
            right=self.right[cut],
            value=self.value[cut],
            roots=self.roots[:k],
            aggregate=self.aggregate,
            base=self.base,
        )

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """(rows, trees) matrix of the leaf each row reaches in each tree."""
        node = np.broadcast_to(self.roots, (len(x), self.n_trees)).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            feature = self.feature[node]
            active = feature != LEAF
            if not active.any():
                return self.value[node]
            f = np.where(active, feature, 0)
            v = x[rows, f]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            cat = self.categorical[node] & active & ~np.isnan(v)
            if cat.any():
                table = self.cat_table()
                code = np.where(cat, v, 0).astype(np.int64)
                inside = (code >= 0) & (code < table.shape[1])
                member = table[node, np.clip(code, 0, table.shape[1] - 1)] & inside
                go_left = np.where(cat, member, go_left)
            node = np.where(active, np.where(go_left, self.left[node], self.right[node]), node)

    def cat_table(self) -> np.ndarray:
        """(nodes, codes) membership matrix of the categorical sets, for vectorised routing."""
        return self._cat_table

    @cached_property
    def _cat_table(self) -> np.ndarray:
        # Built once per ensemble: leaf_values asks at every depth, and per row it cost more
        # than the walk itself.
        width = 1 + max((max(s) for s in self.cat_sets if s), default=0)
        table = np.zeros((len(self.feature), width), dtype=bool)
        for node, members in enumerate(self.cat_sets):
            table[node, list(members)] = True
        return table

    def scores_from_leaves(self, leaves: np.ndarray) -> np.ndarray:
        if self.aggregate == "mean":
            return leaves.sum(axis=1) / leaves.shape[1]
        return expit(self.base + leaves.sum(axis=1))


@dataclass(frozen=True)
class Linear:
    """score = expit(intercept + sum_f term_f); term_f = slope*x + offset, or `missing_term`."""

    slope: np.ndarray
    offset: np.ndarray
    missing_term: np.ndarray
    intercept: float

    def terms(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), self.missing_term, x * self.slope + self.offset)


@dataclass(frozen=True)
class ExportModel:
    model_type: str
    inputs: tuple[Input, ...]
    model: Trees | Linear

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]


def decision_threshold(threshold: float) -> float:
    return threshold - DECISION_GUARD


def expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class Encoder:
    """Raw columns (None or NaN = missing) -> the encoded float64 matrix the model reads.

    Built once per model and called per batch (the serving fast path runs it on every request).
    Input j reads column `positions[j]` (default j), so a caller that holds its columns in
    another order, serving's profile order, passes them as they are.
    """

    def __init__(self, inputs: tuple[Input, ...], positions: list[int] | None = None) -> None:
        self.width = len(inputs)
        # (column, lookup table or None for numeric, missing value, unknown category value)
        self._plan: list[tuple[int, dict[str, float] | None, float, float]] = []
        for j, spec in enumerate(inputs):
            column = j if positions is None else positions[j]
            if isinstance(spec, NumericInput):
                self._plan.append((column, None, spec.missing, math.nan))
            else:
                self._plan.append((column, spec.lookup(), spec.missing, spec.unknown))
        self._float32 = [
            j for j, s in enumerate(inputs) if isinstance(s, NumericInput) and s.float32
        ]

    def __call__(self, columns: list[list[object]]) -> np.ndarray:
        n = len(columns[0]) if columns else 0
        out = self._rows(columns, n) if n <= SMALL_BATCH else self._columns(columns, n)
        if self._float32:
            out[:, self._float32] = out[:, self._float32].astype(np.float32)
        return out

    def _columns(self, columns: list[list[object]], n: int) -> np.ndarray:
        out = np.empty((n, self.width), dtype=np.float64)
        for j, (column, table, missing, unknown) in enumerate(self._plan):
            values = columns[column]
            if table is None:
                numbers = np.array(values, dtype=np.float64)  # None becomes NaN
                if not math.isnan(missing):
                    numbers[np.isnan(numbers)] = missing
                out[:, j] = numbers
            else:
                out[:, j] = [
                    missing if v is None or v != v else table.get(v, unknown)  # type: ignore[call-overload]
                    for v in values
                ]
        return out

    def _rows(self, columns: list[list[object]], n: int) -> np.ndarray:
        # For a few rows numpy's per-call cost exceeds the values: plain Python, one array at the
        # end (the same float64 values as the column path).
        rows: list[list[object]] = [[] for _ in range(n)]
        for column, table, missing, unknown in self._plan:
            values = columns[column]
            if table is None:
                for row, v in zip(rows, values, strict=True):
                    row.append(missing if v is None or v != v else v)  # v != v: NaN
            else:
                for row, v in zip(rows, values, strict=True):
                    row.append(missing if v is None or v != v else table.get(v, unknown))  # type: ignore[call-overload]
        return np.array(rows, dtype=np.float64).reshape(n, self.width)


def encode(inputs: tuple[Input, ...], columns: list[list[object]]) -> np.ndarray:
    """Raw columns (one list per input, None/NaN = missing) -> encoded float64 matrix."""
    return Encoder(inputs)(columns)


def score_encoded(model: ExportModel, x: np.ndarray) -> np.ndarray:
    if isinstance(model.model, Linear):
        return expit(model.model.intercept + model.model.terms(x).sum(axis=1))
    return model.model.scores_from_leaves(model.model.leaf_values(x))


def score(model: ExportModel, columns: list[list[object]]) -> np.ndarray:
    return score_encoded(model, encode(model.inputs, columns))
