"""Validation as per-partition reductions: the same report, schema and errors (naming the same
global row) for a pandas table and for Dask frames of any partitioning and worker count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from mlgitops.config import DataConfig, ValidateConfig
from mlgitops.data.validation import validate_frame, validate_table
from mlgitops.errors import DataError, DataQualityError, MlgitopsError
from mlgitops.io import save_model_json
from tests.support.partitioned import (
    PARTITION_COUNTS,
    as_dask,
    default_table,
    local_cluster,
    repo_params,
)
from tests.support.project import REPO_ROOT

# sha256 of artifacts/schema.json as the pandas-only code wrote it for the default data (main
# at 49f8a45); reports/validation.json is tracked in Git and compared as it is.
DEFAULT_SCHEMA_SHA256 = "554771bd7f0850d0aeed9b1f9be9e76338e71dc9bb5c2789e0fc4c0051343983"
CHECKS = ValidateConfig(min_rows=10, min_positive=5, max_missing_fraction=0.5)


def _bytes(model, tmp_path: Path, name: str) -> bytes:
    save_model_json(model, tmp_path / name)
    return (tmp_path / name).read_bytes()


def _outputs(frame, data: DataConfig, checks: ValidateConfig, tmp_path: Path, tag: str):
    schema, report = validate_frame(frame, data, checks, str(data.path))
    return _bytes(report, tmp_path, f"r{tag}.json"), _bytes(schema, tmp_path, f"s{tag}.json")


def test_default_data_gives_todays_report_and_schema_for_every_partition_count(tmp_path):
    params = repo_params()
    table = default_table()
    report, schema = _outputs(table, params.data, params.validate_, tmp_path, "pandas")
    assert report == (REPO_ROOT / "reports" / "validation.json").read_bytes()
    assert hashlib.sha256(schema).hexdigest() == DEFAULT_SCHEMA_SHA256
    with dask.config.set(scheduler="sync"):
        for count in PARTITION_COUNTS:
            lazy = as_dask(table, count)
            assert lazy.npartitions == count
            outputs = _outputs(lazy, params.data, params.validate_, tmp_path, str(count))
            assert outputs == (report, schema), count


def test_default_data_on_a_two_worker_cluster(tmp_path):
    params = repo_params()
    table = default_table()
    expected = _outputs(table, params.data, params.validate_, tmp_path, "pandas")
    with local_cluster(workers=2):
        got = _outputs(as_dask(table, 7), params.data, params.validate_, tmp_path, "cluster")
    assert got == expected


def _frame(rows: int = 700) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 20.0, rows).round(2),
            "zeros": np.where(rng.random(rows) < 0.5, 0.0, -0.0),
            "shop": pd.Series([f"s{i % 7}" for i in range(rows)]).where(rng.random(rows) > 0.2),
            "flag": [i % 2 == 0 for i in range(rows)],
            "id": [f"id{i}" for i in range(rows)],
            "empty": [None] * rows,
            "when": pd.Series(pd.date_range("2025-01-01", periods=rows, freq="h", tz="UTC")),
            # Equal class counts: the report lists them in order of first appearance.
            "label": ["ok" if i % 2 == 0 else "fraud" for i in range(rows)],
        }
    )
    frame["when"] = frame["when"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame


def _config(**overrides) -> DataConfig:
    settings = {"path": "x.csv", "target": "label", "positive_class": "fraud"} | overrides
    return DataConfig(**settings)


@pytest.mark.parametrize("count", [1, 2, 5, 13])
def test_small_frame_is_the_same_for_any_partitioning(count, tmp_path):
    frame = _frame()
    config = _config(time_column="when", column_types={"amount": "numeric"})
    expected = _outputs(frame, config, CHECKS, tmp_path, "pandas")
    with dask.config.set(scheduler="sync"):
        got = _outputs(as_dask(frame, count), config, CHECKS, tmp_path, str(count))
    assert got == expected
    schema, report = validate_table(frame, config, CHECKS, "x.csv")
    assert list(report.label_counts) == ["ok", "fraud"]
    assert {c.name: c.distinct_values for c in report.columns}["zeros"] == 1
    assert set(schema.dropped_columns) == {"id", "empty"}


def _error(frame, config: DataConfig, checks: ValidateConfig = CHECKS) -> str:
    with pytest.raises(MlgitopsError) as caught:
        validate_frame(frame, config, checks, "x.csv")
    return f"{type(caught.value).__name__}: {caught.value}"


def _hostile_cases():
    base = _frame()
    text_amount = base.assign(amount=base["amount"].astype(str))
    text_amount.loc[[611, 650], "amount"] = ["12,50 EUR", "n/a"]
    yield "type changed", text_amount, _config(column_types={"amount": "numeric"}), DataError
    booleans = base.assign(amount=base["flag"])
    yield "booleans", booleans, _config(column_types={"amount": "numeric"}), DataError
    missing_target = base.copy()
    missing_target.loc[[433, 690], "label"] = None
    yield "missing target", missing_target, _config(), DataQualityError
    three = base.copy()
    three.loc[[520, 699], "label"] = "chargeback"
    yield "three classes", three, _config(), DataQualityError
    bad_time = base.copy()
    bad_time.loc[[480, 600], "when"] = ["yesterday", "soon"]
    yield "bad time", bad_time, _config(time_column="when"), DataError
    gap_time = base.copy()
    gap_time.loc[640, "when"] = None
    yield "missing time", gap_time, _config(time_column="when"), DataQualityError
    sparse = base.copy()
    sparse.loc[:500, "shop"] = None
    yield "missing fraction", sparse, _config(), DataQualityError
    many = base.assign(label=[f"k{i}" for i in range(len(base))])
    yield "many classes", many, _config(), DataQualityError


@pytest.mark.parametrize("case", list(_hostile_cases()), ids=lambda case: case[0])
def test_errors_name_the_same_global_row_for_any_partitioning(case):
    _, frame, config, kind = case
    expected = _error(frame, config)
    assert expected.startswith(kind.__name__)
    with dask.config.set(scheduler="sync"):
        for count in (2, 7):
            assert _error(as_dask(frame, count), config) == expected


def test_rows_in_late_partitions_are_named_by_their_global_row():
    frame = _frame()
    frame.loc[[433, 690], "label"] = None
    with dask.config.set(scheduler="sync"):
        message = _error(as_dask(frame, 7), _config())
    assert message.endswith("has 2 missing values (first at row 433)")


def test_a_target_with_too_many_classes_is_reported_without_counting_them_all(monkeypatch):
    from mlgitops.data import validation

    monkeypatch.setattr(validation, "_MAX_CLASSES", 50)
    frame = _frame().assign(label=[f"k{i}" for i in range(700)])
    message = _error(frame, _config())
    assert "must have exactly two classes, found more than 50: k0, k1," in message


@pytest.mark.parametrize("few", [0, 3, 100])
def test_distinct_counts_agree_whether_merged_on_the_driver_or_shuffled(few, monkeypatch, tmp_path):
    """Below _FEW_DISTINCT the partitions' distinct values are merged; above, Dask shuffles."""
    from mlgitops.data import validation

    frame = _frame()
    config = _config(time_column="when")
    expected = _outputs(frame, config, CHECKS, tmp_path, "pandas")
    monkeypatch.setattr(validation, "_FEW_DISTINCT", few)
    with dask.config.set(scheduler="sync"):
        assert _outputs(as_dask(frame, 5), config, CHECKS, tmp_path, "dask") == expected
