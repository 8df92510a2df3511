from __future__ import annotations

import pandas as pd
import pytest

from mlgitops.data.table import read_table
from mlgitops.errors import DataError


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        ("a,b\n", "has a header but no rows"),
        ("a,b\n1,2\n3,4,5\n", "not a readable CSV file"),
        ("a,a\n1,2\n", "duplicated column names: a"),
    ],
)
def test_bad_csv_is_named(tmp_path, content, message):
    path = tmp_path / "in.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        read_table(path, "csv")
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv", "csv")


def test_garbage_parquet(tmp_path):
    path = tmp_path / "in.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_table(path, "parquet")


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "in.parquet"
    pd.DataFrame({"x": [1.0, None], "c": ["a", None]}).to_parquet(path)
    frame = read_table(path, "parquet")
    assert frame["x"].isna().sum() == 1
    assert frame["c"].isna().sum() == 1
