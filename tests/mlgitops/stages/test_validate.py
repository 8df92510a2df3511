from __future__ import annotations

import json

import pytest

from mlgitops.errors import DataError
from mlgitops.schema import load_schema
from mlgitops.stages import validate
from tests.mlgitops.data.test_validation import _frame
from tests.support.project import params_in, write_small_dataset


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
