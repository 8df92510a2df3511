"""open_dataset: one file or a directory of Parquet files, local or by URL, in a fixed order,
with the dtypes the pandas reader gives and errors that name the file."""

from __future__ import annotations

import uuid
from pathlib import Path

import dask
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlgitops.config import DataConfig
from mlgitops.data.dataset import open_dataset, partition_labels
from mlgitops.data.generate import GeneratorConfig, write_dataset
from mlgitops.data.generate_fast import BulkConfig, rows_table, write_parquet_dataset
from mlgitops.data.table import read_table
from mlgitops.errors import ConfigError, DataError


def _data(path: str | Path) -> DataConfig:
    return DataConfig(path=path, target="is_fraud", positive_class=1)


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="sync"):
        yield


@pytest.fixture
def csv_file(tmp_path) -> Path:
    path = tmp_path / "transactions.csv"
    write_dataset(path, GeneratorConfig(rows=3000, seed=5))
    return path


def _files(paths: list[Path]) -> pd.DataFrame:
    """What pandas reads from the files, one after another."""
    return pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)


def _split_into_files(frame: pd.DataFrame, paths: list[Path]) -> None:
    size = -(-len(frame) // len(paths))
    for number, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        chunk = frame.iloc[number * size : (number + 1) * size]
        pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), path)


def test_a_csv_file_reads_as_the_pandas_reader_reads_it(csv_file):
    frame = open_dataset(_data(csv_file))
    assert frame.npartitions == 1
    assert frame.compute().equals(read_table(csv_file, "csv"))
    assert dict(frame.dtypes) == dict(read_table(csv_file, "csv").dtypes)
    picked = open_dataset(_data(csv_file), ["amount", "country"]).compute()
    assert list(picked.columns) == ["amount", "country"]


def test_a_directory_reads_in_sorted_file_order_whatever_the_names(tmp_path, csv_file):
    whole = read_table(csv_file, "csv")
    # Written in another order than sorted: the reader sorts, so the rows come back in order.
    names = ["b-10.parquet", "b-02.parquet", "a.parquet"]
    paths = [tmp_path / "ds" / name for name in sorted(names)]
    _split_into_files(whole, paths)
    (tmp_path / "ds" / "_SUCCESS").write_text("")  # a writer's marker, skipped
    (tmp_path / "ds" / ".part.tmp").mkdir()  # a hidden temporary directory, skipped
    (tmp_path / "ds" / ".part.tmp" / "half.parquet").write_bytes(b"PAR1")
    data = _data(tmp_path / "ds")
    assert data.format == "dataset"
    frame = open_dataset(data)
    assert frame.npartitions == 3
    assert partition_labels(data) == [str(p) for p in paths]
    assert frame.compute().reset_index(drop=True).equals(_files(paths))
    assert frame["transaction_id"].compute().tolist() == whole["transaction_id"].tolist()
    # Strings keep the pandas reader's dtype (Dask would convert them otherwise).
    assert frame.dtypes["country"] == whole.dtypes["country"]
    assert int(frame["is_fraud"].sum().compute()) == int(whole["is_fraud"].sum())


def test_hive_partitions_add_their_key_as_a_string_column(tmp_path, csv_file):
    whole = read_table(csv_file, "csv")
    paths = [tmp_path / "ds" / f"part={n:04d}" / "data.parquet" for n in (0, 1, 2)]
    _split_into_files(whole, paths)
    frame = open_dataset(_data(tmp_path / "ds")).compute()
    assert frame["part"].tolist() == ["0000"] * 1000 + ["0001"] * 1000 + ["0002"] * 1000
    only = open_dataset(_data(tmp_path / "ds"), ["part", "amount"]).compute()
    assert list(only.columns) == ["part", "amount"]
    assert only["amount"].reset_index(drop=True).equals(whole["amount"])


def test_column_projection_reads_only_what_is_asked(tmp_path):
    write_parquet_dataset(tmp_path / "big", BulkConfig(rows=5000, partitions=4, seed=2))
    frame = open_dataset(_data(tmp_path / "big"))
    total = frame[["is_fraud"]].sum().compute()
    expected = rows_table(BulkConfig(rows=5000, partitions=1, seed=2), 0, 5000)
    assert int(total["is_fraud"]) == sum(expected.column("is_fraud").to_pylist())


def test_a_single_parquet_file_is_one_partition_per_row_group(tmp_path, csv_file):
    whole = read_table(csv_file, "csv")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(whole, preserve_index=False), path, row_group_size=700)
    frame = open_dataset(_data(path))
    assert frame.npartitions == 5
    assert partition_labels(_data(path))[1] == f"{path} (row group 1)"
    assert frame.compute().reset_index(drop=True).equals(pq.read_table(path).to_pandas())


def test_an_fsspec_url_reads_like_a_local_directory(tmp_path):
    write_parquet_dataset(tmp_path / "big", BulkConfig(rows=3000, partitions=3, seed=8))
    memory = fsspec.filesystem("memory")
    root = f"/test-{uuid.uuid4().hex}"
    try:
        for file in sorted((tmp_path / "big").iterdir()):
            memory.pipe(f"{root}/big/{file.name}", file.read_bytes())
        remote = open_dataset(_data(f"memory://{root}/big")).compute()
        local = open_dataset(_data(tmp_path / "big")).compute()
        assert remote.equals(local)
        assert _data(f"memory://{root}/big").location == f"memory://{root}/big"
    finally:
        memory.rm(root, recursive=True)


def test_a_file_with_other_columns_fails_naming_the_file(tmp_path, csv_file):
    whole = read_table(csv_file, "csv")
    paths = [tmp_path / "ds" / "a.parquet", tmp_path / "ds" / "b.parquet"]
    _split_into_files(whole, paths)
    pq.write_table(pa.Table.from_pandas(whole.drop(columns="amount").iloc[:10]), paths[1])
    frame = open_dataset(_data(tmp_path / "ds"))
    with pytest.raises(DataError, match=rf"^{paths[1]}: columns differ .*: missing amount$"):
        frame.compute()


def test_a_column_of_another_type_fails_naming_file_and_column(tmp_path, csv_file):
    whole = read_table(csv_file, "csv")
    paths = [tmp_path / "ds" / "a.parquet", tmp_path / "ds" / "b.parquet"]
    _split_into_files(whole, paths)
    changed = whole.iloc[:10].assign(hour=whole["hour"].iloc[:10].astype(str))
    pq.write_table(pa.Table.from_pandas(changed, preserve_index=False), paths[1])
    expected = rf"^{paths[1]}: column hour: type (large_)?string differs from int64"
    with pytest.raises(DataError, match=expected):
        open_dataset(_data(tmp_path / "ds")).compute()


def test_a_corrupt_file_fails_naming_it(tmp_path, csv_file):
    whole = read_table(csv_file, "csv")
    paths = [tmp_path / "ds" / "a.parquet", tmp_path / "ds" / "b.parquet"]
    _split_into_files(whole, paths)
    paths[1].write_bytes(paths[1].read_bytes()[:200])
    with pytest.raises(DataError, match=rf"^{paths[1]}: not a readable Parquet file"):
        open_dataset(_data(tmp_path / "ds")).compute()


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "no Parquet files in the directory"),
        ({"notes.csv": b"a\n1\n"}, "notes.csv: not a Parquet file"),
    ],
    ids=["empty", "stray file"],
)
def test_a_directory_that_is_not_a_dataset_is_refused(tmp_path, layout, message):
    (tmp_path / "ds").mkdir()
    for name, content in layout.items():
        (tmp_path / "ds" / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        open_dataset(_data(tmp_path / "ds"))


def test_missing_inputs_and_columns_are_one_line_errors(tmp_path, csv_file):
    with pytest.raises(DataError, match="not found"):
        open_dataset(_data(tmp_path / "nothing"))
    with pytest.raises(DataError, match=r"no column nope"):
        open_dataset(_data(csv_file), ["amount", "nope"])


def test_data_path_kinds(tmp_path):
    (tmp_path / "spark.parquet").mkdir()
    assert _data(tmp_path / "spark.parquet").format == "dataset"
    assert _data("data/transactions.csv.gz").format == "csv"
    assert _data("s3://bucket/table.parquet").format == "parquet"
    assert _data("s3://bucket/big/").format == "dataset"
    assert _data("s3://bucket/big").location == "s3://bucket/big"
    assert _data("data/big").provenance_path == Path("data/big.provenance.csv")
    with pytest.raises(ConfigError, match=r"data.path: unsupported file type 'x.xlsx'"):
        _ = _data("x.xlsx").format
    with pytest.raises(ConfigError, match="is a URL"):
        _ = _data("s3://bucket/big").provenance_path
