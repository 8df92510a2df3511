"""The training schema and the quality checks (stage `validate` and `data ingest` use them)."""

from __future__ import annotations

import pandas as pd
import pytest

from mlgitops.config import DataConfig, ValidateConfig
from mlgitops.data import validation
from mlgitops.errors import DataError, DataQualityError


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
    schema, report = validation.validate_table(_frame(), _config(), CHECKS, "x.csv")
    kinds = {f.name: f.kind for f in schema.features}
    assert kinds == {"amount": "numeric", "shop": "categorical", "flag": "categorical"}
    assert schema.dropped_columns == ("id",)
    assert report.label_counts == {"ok": 180, "fraud": 20}
    assert report.label_rate == pytest.approx(0.1)


def test_missing_target_column_is_named():
    with pytest.raises(DataError, match=r"target column 'is_fraud' \(data\.target\) not found"):
        validation.validate_table(
            _frame(), DataConfig(path="x.csv", target="is_fraud", positive_class=1), CHECKS, "x.csv"
        )


def test_more_than_two_classes():
    frame = _frame()
    frame.loc[3, "label"] = "chargeback"
    with pytest.raises(DataQualityError, match="exactly two classes, found 3"):
        validation.validate_table(frame, _config(), CHECKS, "x.csv")


def test_positive_class_must_exist():
    with pytest.raises(DataQualityError, match="positive_class 'yes' is not a value"):
        validation.validate_table(
            _frame(), DataConfig(path="x.csv", target="label", positive_class="yes"), CHECKS, "x"
        )


def test_missing_target_values():
    frame = _frame()
    frame.loc[17, "label"] = None
    with pytest.raises(DataQualityError, match="1 missing values \\(first at row 17\\)"):
        validation.validate_table(frame, _config(), CHECKS, "x.csv")


def test_declared_numeric_column_whose_type_changed():
    frame = _frame()
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[42, "amount"] = "12,50 EUR"
    config = _config(column_types={"amount": "numeric"})
    with pytest.raises(
        DataError, match=r"column 'amount' is numeric .* holds '12,50 EUR' \(row 42\)"
    ):
        validation.validate_table(frame, config, CHECKS, "x.csv")


def test_numbers_as_text_still_pass_when_declared_numeric():
    frame = _frame()
    frame["amount"] = frame["amount"].astype(str)
    schema, _ = validation.validate_table(
        frame, _config(column_types={"amount": "numeric"}), CHECKS, "x.csv"
    )
    assert schema.features[0].kind == "numeric"
    assert schema.features[0].source == "declared"


def test_declared_column_absent():
    with pytest.raises(DataError, match="declared in data.column_types are missing: ghost"):
        validation.validate_table(_frame(), _config(column_types={"ghost": "numeric"}), CHECKS, "x")


def test_too_many_missing_values():
    frame = _frame()
    frame.loc[: len(frame) * 0.7, "shop"] = None
    with pytest.raises(DataQualityError, match="column 'shop' is 7.*% missing"):
        validation.validate_table(frame, _config(), CHECKS, "x.csv")


def test_too_few_rows_and_positives():
    with pytest.raises(DataQualityError, match="fewer than validate.min_rows=500"):
        validation.validate_table(_frame(), _config(), ValidateConfig(min_rows=500), "x.csv")
    with pytest.raises(DataQualityError, match="fewer than validate.min_positive=50"):
        validation.validate_table(
            _frame(), _config(), ValidateConfig(min_rows=10, min_positive=50), "x.csv"
        )


def test_bad_time_column():
    frame = _frame().assign(when="2025-01-01T00:00:00Z")
    frame.loc[5, "when"] = "yesterday"
    with pytest.raises(DataError, match="time column 'when' holds 'yesterday' at row 5"):
        validation.validate_table(frame, _config(time_column="when"), CHECKS, "x.csv")
