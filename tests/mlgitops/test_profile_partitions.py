"""The reference profile built partition by partition equals numpy/pandas on the whole column,
byte for byte, for any partition count, on one process or a 2-worker LocalCluster."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from mlgitops import profiling as profile_module
from mlgitops.data.split import split_frame
from mlgitops.data.validation import validate_table
from mlgitops.io import save_model_json
from mlgitops.profile import CategoricalProfile, NumericProfile
from mlgitops.profiling import (
    build_profile,
    categorical_profile,
    numeric_profile,
    profile_frame,
)
from mlgitops.schema import TARGET_COLUMN, FeatureSpec, TrainingSchema
from tests.support.partitioned import (
    PARTITION_COUNTS,
    as_dask,
    default_table,
    local_cluster,
    repo_params,
)

# sha256 of artifacts/reference_profile.json as the pandas-only code wrote it for the default
# data (main at 49f8a45, before profiles were built partition by partition).
DEFAULT_PROFILE_SHA256 = "c5e3257b14f26e40a2ee60f9d6e70a323368c26c59d91f173c860b636651c5fd"


def _bytes(model, tmp_path: Path, name: str) -> bytes:
    save_model_json(model, tmp_path / name)
    return (tmp_path / name).read_bytes()


@pytest.fixture(scope="module")
def default_train() -> tuple[pd.DataFrame, TrainingSchema]:
    params = repo_params()
    table = default_table()
    schema, _ = validate_table(table, params.data, params.validate_, "transactions.csv")
    train, _, _ = split_frame(table, schema, params.split, "transactions.csv")
    return train[[*schema.feature_names, TARGET_COLUMN]], schema


def test_default_profile_is_todays_bytes_for_every_partition_count(default_train, tmp_path):
    train, schema = default_train
    config = repo_params().split
    pandas_bytes = _bytes(
        build_profile(train[schema.feature_names], train[TARGET_COLUMN].to_numpy(), schema, config),
        tmp_path,
        "pandas.json",
    )
    assert hashlib.sha256(pandas_bytes).hexdigest() == DEFAULT_PROFILE_SHA256
    with dask.config.set(scheduler="sync"):
        for count in PARTITION_COUNTS:
            built = profile_frame(as_dask(train, count), schema, config, TARGET_COLUMN)
            assert _bytes(built, tmp_path, f"dask{count}.json") == pandas_bytes, count


def test_default_profile_on_a_two_worker_cluster(default_train, tmp_path):
    train, schema = default_train
    config = repo_params().split
    expected = _bytes(profile_frame(train, schema, config, TARGET_COLUMN), tmp_path, "a.json")
    with local_cluster(workers=2):
        built = profile_frame(as_dask(train, 7), schema, config, TARGET_COLUMN)
    assert _bytes(built, tmp_path, "b.json") == expected


# --- against numpy and pandas on the whole column (the reference implementation) ---------------


def _numpy_numeric(values: pd.Series, bins: int) -> dict:
    present = values.dropna().to_numpy(dtype="float64")
    if present.size == 0:
        return {"bin_edges": [], "bin_fractions": [], "mean": None, "std": None}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    return {
        "count": len(values),
        "missing_rate": float(values.isna().mean()),
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "std": float(present.std()),
        "bin_edges": [float(e) for e in edges],
        "bin_fractions": [float(c) / present.size for c in counts],
    }


def _columns(rng: np.random.Generator, rows: int) -> dict[str, pd.Series]:
    wide = rng.standard_normal(rows) * 10.0 ** rng.integers(-4, 8, rows)
    return {
        # Continuous over many magnitudes, with gaps: edges between distinct values.
        "wide": pd.Series(wide).where(rng.random(rows) > 0.1),
        # Few distinct values repeated many times: every radix level runs, bins collapse.
        "repeated": pd.Series(rng.integers(-3, 4, rows).astype("float64")),
        # Mostly one value: quantile edges fall inside a run of ties.
        "spiky": pd.Series(np.where(rng.random(rows) < 0.8, 2.5, rng.gamma(2.0, 3.0, rows))),
        "integers": pd.Series(rng.integers(0, 10**9, rows).astype("float64")),
        "constant": pd.Series(np.full(rows, -7.25)),
        "all_missing": pd.Series(np.full(rows, np.nan)),
        "signed_zeros": pd.Series(np.where(rng.random(rows) < 0.5, 0.0, -rng.random(rows))),
    }


@pytest.mark.parametrize("rows", [1, 5, 200, 70_001])
def test_numeric_profiles_equal_numpy_on_the_whole_column(rows):
    rng = np.random.default_rng(rows)
    for name, column in _columns(rng, rows).items():
        for bins in (2, 10, 37):
            built = numeric_profile(column, bins)
            expected = _numpy_numeric(column, bins)
            for field, value in expected.items():
                assert getattr(built, field) == value, (name, bins, field)


def test_numeric_profiles_are_the_same_for_uneven_and_empty_partitions():
    rng = np.random.default_rng(7)
    rows = 60_000
    frame = pd.DataFrame({**_columns(rng, rows), "row": np.arange(rows)})
    schema = TrainingSchema(
        target="y",
        positive_class="1",
        time_column=None,
        features=tuple(
            FeatureSpec(name=name, kind="numeric", source="declared") for name in _columns(rng, 1)
        ),
        dropped_columns=(),
    )
    frame[TARGET_COLUMN] = (rng.random(rows) < 0.03).astype("int8")
    # Rows kept only at both ends: the middle partitions are empty.
    kept = frame[(frame.row < 9_000) | (frame.row > 51_000)].reset_index(drop=True)
    config = repo_params().split.model_copy(update={"numeric_bins": 13})
    expected = profile_frame(kept, schema, config, TARGET_COLUMN)
    with dask.config.set(scheduler="sync"):
        for count in (2, 5, 11):
            lazy = as_dask(frame, count)
            lazy = lazy[(lazy.row < 9_000) | (lazy.row > 51_000)]
            assert 0 in [len(p) for p in lazy.partitions] or count < 5
            assert profile_frame(lazy, schema, config, TARGET_COLUMN) == expected, count


def test_a_partition_answers_with_little_data_whatever_the_values(monkeypatch):
    """Radix selection sends per pending edge at most _EXACT_KEYS keys or 2**16 digit counts."""
    sizes, kinds = [], set()
    original = profile_module._radix_work

    def measured(values, requests):
        answers = original(values, requests)
        sizes.extend(answer[1].size for answer in answers)
        kinds.update(answer[0] for answer in answers)
        return answers

    monkeypatch.setattr(profile_module, "_radix_work", measured)
    rng = np.random.default_rng(3)
    ties = pd.Series(rng.integers(0, 5, 400_000).astype("float64"))
    distinct = pd.Series(rng.standard_normal(400_000) * 10.0 ** rng.integers(-3, 3, 400_000))
    for values in (ties, distinct):
        built = numeric_profile(values, 10)
        assert built.bin_edges == _numpy_numeric(values, 10)["bin_edges"]
    assert max(sizes) <= max(profile_module._EXACT_KEYS, 1 << 16)
    assert kinds == {"keys", "digits"}  # the distinct values needed a digit pass first


def test_categorical_profile_matches_pandas_with_ties_and_truncation():
    rng = np.random.default_rng(11)
    names = np.array([f"c{i:02d}" for i in range(40)], dtype=object)
    values = pd.Series(names[rng.integers(0, 40, 5000)]).where(rng.random(5000) > 0.05)
    values = pd.concat([values, pd.Series(["tie_b", "tie_a"] * 3)], ignore_index=True)
    for keep in (1, 5, 40, 100):
        built = categorical_profile(values, keep)
        frequencies = values.dropna().value_counts(normalize=True)
        ordered = sorted(frequencies.items(), key=lambda item: (-item[1], str(item[0])))
        assert built == CategoricalProfile(
            count=len(values),
            missing_rate=float(values.isna().mean()),
            frequencies={str(k): float(v) for k, v in ordered[:keep]},
            truncated_fraction=float(sum(v for _, v in ordered[keep:])),
        )
    assert list(categorical_profile(values, 100).frequencies)[-2:] == ["tie_a", "tie_b"]


def test_numeric_profile_of_no_values():
    assert numeric_profile(pd.Series([], dtype="float64"), 10) == NumericProfile(
        count=0,
        missing_rate=0.0,
        min=None,
        max=None,
        mean=None,
        std=None,
        bin_edges=[],
        bin_fractions=[],
    )
