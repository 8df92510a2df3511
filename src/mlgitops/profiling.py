"""Building the reference profile (mlgitops.profile) from the training split, on pandas or Dask.

The build side of the profile: the split stage and the score reference call it; the pod only
reads profiles, so it never imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlgitops import partitions
from mlgitops.partitions import PairwisePieces
from mlgitops.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

    from mlgitops.config import SplitConfig
    from mlgitops.schema import TrainingSchema


# Building the profile: per-partition passes (mlgitops.partitions) merged exactly, so a pandas
# frame (one partition) and a Dask DataFrame of any partitioning give the same bytes, equal to
# numpy's and pandas' own results on the whole column:
# - counts (rows, missing, categories, bins) are integers summed over partitions;
# - min and max are exact; mean and std are numpy's pairwise sums, replayed over global positions
#   (partitions.pairwise_total), std in numpy's two passes (sum, then squared deviations);
# - quantile bin edges come from exact order statistics found by radix selection on the values'
#   order-preserving 64-bit keys, 16 bits per pass, and numpy's "linear" interpolation on them.
# A partition's answer is bounded by bins, categories and log(rows): per pending edge either its
# values under the edge's key prefix as (key, count) pairs when they hold at most _EXACT_KEYS
# distinct keys (the edge is then found without another pass), or a sparse histogram of the next
# 16-bit digit; and the summation tree's partial sums. Category counts are the one thing bounded
# by the data's distinct categories (all of them are needed to rank the most frequent exactly).
_DIGIT_BITS = 16
_EXACT_KEYS = 1 << 15
_SIGN = np.uint64(1 << 63)


def _present(column: pd.Series) -> np.ndarray:
    return column.dropna().to_numpy(dtype="float64")


def _sort_keys(values: np.ndarray) -> np.ndarray:
    """Unsigned keys in the order of the floats (-0.0 folded into 0.0, as they compare equal)."""
    bits = (values + 0.0).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _from_key(key: int) -> float:
    word = np.array([key], dtype=np.uint64)
    bits = np.where(word & _SIGN, word ^ _SIGN, ~word)
    return float(bits.view(np.float64)[0])


def _radix_work(values: np.ndarray, requests: list[tuple[int, int]]) -> list[Any]:
    """Per request (key prefix, its bit length): ("keys", distinct keys, counts) under the
    prefix when there are few, else ("digits", next 16-bit digits, counts), both sparse."""
    keys = _sort_keys(values)
    answers: list[Any] = []
    for prefix, bits in requests:
        chosen = keys if bits == 0 else keys[(keys >> np.uint64(64 - bits)) == np.uint64(prefix)]
        found, counts = np.unique(chosen, return_counts=True)
        if found.size <= _EXACT_KEYS:
            answers.append(("keys", found, counts))
            continue
        answers.append(("digits", *_digit_counts(found, counts, bits)))
    return answers


def _digit_counts(keys: np.ndarray, counts: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts per next 16-bit digit, from sorted distinct keys and their counts."""
    digits = ((keys >> np.uint64(64 - bits - _DIGIT_BITS)) & np.uint64(0xFFFF)).astype(np.int64)
    starts = np.flatnonzero(np.concatenate(([True], digits[1:] != digits[:-1])))
    return digits[starts], np.add.reduceat(counts, starts) if keys.size else counts


class _Selection:
    """Exact order statistics of one column, found a 16-bit digit per pass (or at once when the
    values left under an edge's key prefix are few distinct keys)."""

    def __init__(self, ranks: list[int]) -> None:
        # rank -> [rank within prefix, prefix, bits, value]
        self.targets: dict[int, list[Any]] = {rank: [rank, 0, 0, None] for rank in ranks}

    def requests(self) -> list[tuple[int, int]]:
        return sorted({(t[1], t[2]) for t in self.targets.values() if t[3] is None})

    def resolve(self, requests: list[tuple[int, int]], answers: list[list[Any]]) -> None:
        for position, request in enumerate(requests):
            prefix, bits = request
            parts = [answer[position] for answer in answers]
            waiting = [t for t in self.targets.values() if t[3] is None and (t[1], t[2]) == request]
            if all(part[0] == "keys" for part in parts):
                keys, inverse = np.unique(
                    np.concatenate([part[1] for part in parts]), return_inverse=True
                )
                counts = np.zeros(keys.size, dtype=np.int64)
                np.add.at(counts, inverse, np.concatenate([part[2] for part in parts]))
                cumulative = np.cumsum(counts)
                for target in waiting:
                    found = int(np.searchsorted(cumulative, target[0], side="right"))
                    target[3] = _from_key(int(keys[found]))
                continue
            counts = np.zeros(1 << _DIGIT_BITS, dtype=np.int64)
            for part in parts:
                digits, found_counts = (
                    part[1:] if part[0] == "digits" else _digit_counts(part[1], part[2], bits)
                )
                np.add.at(counts, digits, found_counts)
            cumulative = np.cumsum(counts)
            for target in waiting:
                digit = int(np.searchsorted(cumulative, target[0], side="right"))
                target[0] -= int(cumulative[digit - 1]) if digit else 0
                target[1] = (prefix << _DIGIT_BITS) | digit
                target[2] = bits + _DIGIT_BITS
                if target[2] == 64:
                    target[3] = _from_key(target[1])

    def done(self) -> bool:
        return all(t[3] is not None for t in self.targets.values())

    def value(self, rank: int) -> float:
        return self.targets[rank][3]


def _quantile_plan(n: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy.quantile's "linear" method: (previous rank, next rank, gamma) per interior edge."""
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    virtual = (n - 1) * quantiles
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1
    following[above] = -1
    below = virtual < 0
    previous[below] = 0
    following[below] = 0
    gamma = np.asarray(virtual - previous, dtype=virtual.dtype)
    as_rank = np.vectorize(lambda i: int(i) if i >= 0 else n + int(i), otypes=[np.int64])
    return as_rank(previous), as_rank(following), gamma


def _lerp(low: np.ndarray, high: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's _lerp, operation for operation, so the edges match numpy.quantile's bits."""
    difference = high - low
    result = np.add(low, difference * gamma)
    np.subtract(high, difference * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe")
    return result


class _NumericState:
    def __init__(self, counts: list[int], present: list[int], bins: int) -> None:
        self.count = sum(counts)
        self.present = sum(present)
        self.offsets = partitions.offsets(present)
        self.bins = bins
        self.sum_pieces: list[Any] | None = None
        self.mean: float | None = None
        self.square_sum: float | None = None
        self.edges: np.ndarray | None = None
        self.bin_counts: np.ndarray | None = None
        self.previous, self.following, self.gamma = _quantile_plan(self.present, bins)
        ranks = sorted(set(self.previous.tolist()) | set(self.following.tolist()))
        self.selection = _Selection(ranks if self.present else [])

    def request(self) -> dict[str, Any]:
        if not self.present:
            return {}
        request: dict[str, Any] = {"offsets": self.offsets, "total": self.present}
        if self.mean is None:
            request["sum"] = True
        elif self.square_sum is None:
            request["deviation_from"] = self.mean
        if not self.selection.done():
            request["radix"] = self.selection.requests()
        elif self.bin_counts is None:
            request["edges"] = self.edges
        return request

    def absorb(self, request: dict[str, Any], answers: list[dict[str, Any]]) -> None:
        if "sum" in request:
            total = partitions.pairwise_total([a["sum"] for a in answers], self.present)
            self.mean = float(np.float64(total) / self.present)
        if "deviation_from" in request:
            self.square_sum = partitions.pairwise_total(
                [a["squares"] for a in answers], self.present
            )
        if "radix" in request:
            self.selection.resolve(request["radix"], [a["radix"] for a in answers])
            if self.selection.done():
                low = np.array([self.selection.value(r) for r in self.previous], dtype="float64")
                high = np.array([self.selection.value(r) for r in self.following], dtype="float64")
                # Repeated values collapse bins; keep edges strictly increasing.
                self.edges = np.unique(_lerp(low, high, self.gamma))
        if "edges" in request:
            self.bin_counts = np.sum([a["bins"] for a in answers], axis=0, dtype=np.int64)

    def pending(self) -> bool:
        return bool(self.present) and (self.square_sum is None or self.bin_counts is None)


def _numeric_work(
    part: pd.DataFrame,
    index: int,
    requests: dict[str, dict[str, Any]],
    label: tuple[str, list[int], int] | None,
) -> tuple[dict[str, dict[str, Any]], PairwisePieces | None]:
    label_pieces = None
    if label is not None:  # labels are never missing (data.prepare.encode_target)
        name, row_offsets, rows = label
        values = part[name].to_numpy(dtype="float64")
        label_pieces = partitions.pairwise_pieces(values, row_offsets[index], rows)
    answers: dict[str, dict[str, Any]] = {}
    for name, request in requests.items():
        values = _present(part[name])
        answer: dict[str, Any] = {}
        offset = request["offsets"][index] if request else 0
        if "sum" in request:
            answer["sum"] = partitions.pairwise_pieces(values, offset, request["total"])
        if "deviation_from" in request:
            # numpy's var: (x - mean) then its square, elementwise, then the pairwise sum.
            deviations = values - np.float64(request["deviation_from"])
            answer["squares"] = partitions.pairwise_pieces(
                np.multiply(deviations, deviations), offset, request["total"]
            )
        if "radix" in request:
            answer["radix"] = _radix_work(values, request["radix"])
        if "edges" in request:
            edges = request["edges"]
            answer["bins"] = np.bincount(
                np.searchsorted(edges, values, side="right"), minlength=edges.size + 1
            )
        answers[name] = answer
    return answers, label_pieces


def _first_work(
    part: pd.DataFrame,
    index: int,
    numeric: list[str],
    categorical: list[str],
) -> dict[str, Any]:
    answer: dict[str, Any] = {"rows": len(part), "numeric": {}, "categorical": {}}
    for name in numeric:
        values = _present(part[name])
        answer["numeric"][name] = {
            "present": int(values.size),
            "min": float(values.min()) if values.size else None,
            "max": float(values.max()) if values.size else None,
        }
    for name in categorical:
        column = part[name]
        counts = column.dropna().value_counts(sort=False)
        answer["categorical"][name] = {
            "missing": int(column.isna().sum()),
            "counts": {key: int(value) for key, value in counts.items()},
        }
    return answer


def _numeric_profiles(
    parts: list[Any], first: list[dict[str, Any]], names: list[str], bins: int, label: str | None
) -> tuple[dict[str, NumericProfile], float]:
    """The numeric features' profiles and numpy's sum of the labels (read in the first pass)."""
    rows = [answer["rows"] for answer in first]
    states = {
        name: _NumericState(rows, [a["numeric"][name]["present"] for a in first], bins)
        for name in names
    }
    label_sum = 0.0
    label_request = (label, partitions.offsets(rows), sum(rows)) if label and sum(rows) else None
    while label_request or any(state.pending() for state in states.values()):
        requests = {name: state.request() for name, state in states.items() if state.pending()}
        answers = partitions.run_pass(parts, _numeric_work, requests, label_request)
        for name, request in requests.items():
            states[name].absorb(request, [answer[0][name] for answer in answers])
        if label_request:
            label_sum = partitions.pairwise_total([a[1] for a in answers], label_request[2])
            label_request = None
    profiles = {}
    for name, state in states.items():
        missing_rate = (state.count - state.present) / state.count if state.count else 0.0
        if not state.present:
            profiles[name] = NumericProfile(
                count=state.count,
                missing_rate=missing_rate,
                min=None,
                max=None,
                mean=None,
                std=None,
                bin_edges=[],
                bin_fractions=[],
            )
            continue
        assert state.edges is not None
        assert state.bin_counts is not None
        assert state.square_sum is not None
        seen = [a["numeric"][name] for a in first if a["numeric"][name]["present"]]
        profiles[name] = NumericProfile(
            count=state.count,
            missing_rate=missing_rate,
            min=min(s["min"] for s in seen),
            max=max(s["max"] for s in seen),
            mean=state.mean,
            std=float(np.sqrt(np.float64(state.square_sum) / state.present)),
            bin_edges=[float(edge) for edge in state.edges],
            bin_fractions=[float(count) / state.present for count in state.bin_counts],
        )
    return profiles, label_sum


def _categorical_profile(
    count: int, missing: int, counts: dict[Any, int], max_categories: int
) -> CategoricalProfile:
    present = sum(counts.values())
    frequencies = {key: value / present for key, value in counts.items()}
    # Ties broken by name so the profile file is identical run to run.
    ordered = sorted(frequencies.items(), key=lambda item: (-item[1], str(item[0])))
    kept = ordered[:max_categories]
    return CategoricalProfile(
        count=count,
        missing_rate=missing / count if count else 0.0,
        frequencies={str(key): float(value) for key, value in kept},
        truncated_fraction=float(sum(value for _, value in ordered[max_categories:])),
    )


def _merge_counts(answers: list[dict[Any, int]]) -> dict[Any, int]:
    merged: dict[Any, int] = {}
    for counts in answers:
        for key, value in counts.items():
            merged[key] = merged.get(key, 0) + value
    return merged


def _profile_columns(
    frame: Any,
    numeric: list[str],
    categorical: list[str],
    bins: int,
    max_categories: int,
    label: str | None = None,
) -> tuple[int, dict[str, FeatureProfile], float]:
    """(rows, the features' profiles, numpy's sum of the label column)."""
    # Each pass reads only the columns it needs (Parquet-backed frames read no others).
    first = partitions.run_pass(
        partitions.partitions_of(frame, [*numeric, *categorical]), _first_work, numeric, categorical
    )
    numeric_parts = partitions.partitions_of(frame, [*numeric, *([label] if label else [])])
    numeric_profiles, label_sum = _numeric_profiles(numeric_parts, first, numeric, bins, label)
    profiles: dict[str, FeatureProfile] = dict(numeric_profiles)
    rows = sum(answer["rows"] for answer in first)
    for name in categorical:
        profiles[name] = _categorical_profile(
            rows,
            sum(a["categorical"][name]["missing"] for a in first),
            _merge_counts([a["categorical"][name]["counts"] for a in first]),
            max_categories,
        )
    return rows, profiles, label_sum


def numeric_profile(values: pd.Series, bins: int) -> NumericProfile:
    frame = values.rename("values").to_frame()
    profile = _profile_columns(frame, ["values"], [], bins, 1)[1]["values"]
    assert isinstance(profile, NumericProfile)
    return profile


def categorical_profile(values: pd.Series, max_categories: int) -> CategoricalProfile:
    frame = values.rename("values").to_frame()
    profile = _profile_columns(frame, [], ["values"], 2, max_categories)[1]["values"]
    assert isinstance(profile, CategoricalProfile)
    return profile


def profile_frame(
    frame: pd.DataFrame | dd.DataFrame,
    schema: TrainingSchema,
    config: SplitConfig,
    label_column: str,
) -> ReferenceProfile:
    """The profile of a model frame (schema's features typed by data.prepare.model_frame, plus
    the 0/1 labels in `label_column`), pandas or Dask; the same bytes for any partitioning."""
    numeric = [f.name for f in schema.features if f.kind == "numeric"]
    categorical = [f.name for f in schema.features if f.kind != "numeric"]
    n_rows, profiles, label_sum = _profile_columns(
        frame,
        numeric,
        categorical,
        config.numeric_bins,
        config.max_profile_categories,
        label_column,
    )
    # numpy's mean of the labels: their pairwise sum over the row count.
    label_rate = float(np.float64(label_sum) / n_rows) if n_rows else 0.0
    return ReferenceProfile(
        n_rows=n_rows,
        target=schema.target,
        positive_class=schema.positive_class,
        label_rate=label_rate,
        features={feature.name: profiles[feature.name] for feature in schema.features},
    )


def build_profile(
    features: pd.DataFrame, labels: np.ndarray, schema: TrainingSchema, config: SplitConfig
) -> ReferenceProfile:
    """The pandas form of `profile_frame` (the features and their labels apart)."""
    label_column = "__profile_label__"
    frame = features.assign(**{label_column: np.asarray(labels)})
    return profile_frame(frame, schema, config, label_column)
