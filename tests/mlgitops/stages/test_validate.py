from __future__ import annotations

import json

import pandas as pd
import pytest

from mlgitops.config import DataConfig, ValidateConfig
from mlgitops.errors import DataError, DataQualityError
from mlgitops.schema import load_schema
from mlgitops.stages import validate
from tests.support.project import params_in, write_small_dataset


def _frame(rows: int = 200) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [float(i % 50) for i in range(rows)],
            "shop": [f"s{i % 7}" for i in range(rows)],
            "flag": [i % 2 == 0 for i in range(rows)],
            "id": [f"id{i}" for i in range(rows)],
            "label": ["fraud" if i % 10 == 0 else "ok" for i in range(rows)],
        }
    )


def _config(**overrides) -> DataConfig:
    return DataConfig(path="x.csv", target="label", positive_class="fraud", **overrides)


CHECKS = ValidateConfig(min_rows=10, min_positive=5, max_missing_fraction=0.5)


def test_infers_kinds_and_drops_identifiers():
    schema, report = validate.validate_table(_frame(), _config(), CHECKS, "x.csv")
    kinds = {f.name: f.kind for f in schema.features}
    assert kinds == {"amount": "numeric", "shop": "categorical", "flag": "categorical"}
    assert schema.dropped_columns == ("id",)
    assert report.label_counts == {"ok": 180, "fraud": 20}
    assert report.label_rate == pytest.approx(0.1)


def test_missing_target_column_is_named():
    with pytest.raises(DataError, match=r"target column 'is_fraud' \(data\.target\) not found"):
        validate.validate_table(
            _frame(), DataConfig(path="x.csv", target="is_fraud", positive_class=1), CHECKS, "x.csv"
        )


def test_more_than_two_classes():
    frame = _frame()
    frame.loc[3, "label"] = "chargeback"
    with pytest.raises(DataQualityError, match="exactly two classes, found 3"):
        validate.validate_table(frame, _config(), CHECKS, "x.csv")


def test_positive_class_must_exist():
    with pytest.raises(DataQualityError, match="positive_class 'yes' is not a value"):
        validate.validate_table(
            _frame(), DataConfig(path="x.csv", target="label", positive_class="yes"), CHECKS, "x"
        )


def test_missing_target_values():
    frame = _frame()
    frame.loc[17, "label"] = None
    with pytest.raises(DataQualityError, match="1 missing values \\(first at row 17\\)"):
        validate.validate_table(frame, _config(), CHECKS, "x.csv")


def test_declared_numeric_column_whose_type_changed():
    frame = _frame()
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[42, "amount"] = "12,50 EUR"
    config = _config(column_types={"amount": "numeric"})
    with pytest.raises(
        DataError, match=r"column 'amount' is numeric .* holds '12,50 EUR' \(row 42\)"
    ):
        validate.validate_table(frame, config, CHECKS, "x.csv")


def test_numbers_as_text_still_pass_when_declared_numeric():
    frame = _frame()
    frame["amount"] = frame["amount"].astype(str)
    schema, _ = validate.validate_table(
        frame, _config(column_types={"amount": "numeric"}), CHECKS, "x.csv"
    )
    assert schema.features[0].kind == "numeric"
    assert schema.features[0].source == "declared"


def test_declared_column_absent():
    with pytest.raises(DataError, match="declared in data.column_types are missing: ghost"):
        validate.validate_table(_frame(), _config(column_types={"ghost": "numeric"}), CHECKS, "x")


def test_too_many_missing_values():
    frame = _frame()
    frame.loc[: len(frame) * 0.7, "shop"] = None
    with pytest.raises(DataQualityError, match="column 'shop' is 7.*% missing"):
        validate.validate_table(frame, _config(), CHECKS, "x.csv")


def test_too_few_rows_and_positives():
    with pytest.raises(DataQualityError, match="fewer than validate.min_rows=500"):
        validate.validate_table(_frame(), _config(), ValidateConfig(min_rows=500), "x.csv")
    with pytest.raises(DataQualityError, match="fewer than validate.min_positive=50"):
        validate.validate_table(
            _frame(), _config(), ValidateConfig(min_rows=10, min_positive=50), "x.csv"
        )


def test_bad_time_column():
    frame = _frame().assign(when="2025-01-01T00:00:00Z")
    frame.loc[5, "when"] = "yesterday"
    with pytest.raises(DataError, match="time column 'when' holds 'yesterday' at row 5"):
        validate.validate_table(frame, _config(time_column="when"), CHECKS, "x.csv")


def test_run_writes_report_and_schema(params):
    summary = validate.run(params)
    assert "rows" in summary
    report = json.loads(params.paths.validation_report.read_text())
    assert report["n_features"] == 12
    schema = json.loads(params.paths.schema_file.read_text())
    assert schema["dropped_columns"] == ["transaction_id"]


def test_failed_run_leaves_previous_outputs(params, tmp_path):
    validate.run(params)
    before = params.paths.schema_file.read_bytes()
    params.data.path.write_text("transaction_id,amount\ntx1,3\n")
    with pytest.raises(DataError):
        validate.run(params)
    assert params.paths.schema_file.read_bytes() == before


def test_byo_parquet_with_inferred_types(tmp_path):
    frame = _frame(400)
    frame.loc[::9, "amount"] = None
    path = tmp_path / "mine.parquet"
    frame.to_parquet(path)
    config = params_in(
        tmp_path,
        rows=400,
        data={
            "path": str(path),
            "target": "label",
            "positive_class": "fraud",
            "time_column": None,
            "id_column": None,
            "column_types": {},
        },
    )
    summary = validate.run(config)
    assert "3 features" in summary


def test_the_id_column_is_recorded_and_never_a_feature(tmp_path):
    config = params_in(tmp_path)
    write_small_dataset(config.data.path)
    validate.run(config)
    schema = load_schema(config.paths.schema_file)
    assert schema.id_column == "transaction_id"
    assert "transaction_id" in schema.dropped_columns
    assert "transaction_id" not in schema.feature_names
    assert schema.passthrough_columns[:2] == ["transaction_id", "timestamp"]
