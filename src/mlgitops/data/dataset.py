"""The one reader of data.path: a Dask DataFrame over one file or a directory of Parquet files.

data.path is a CSV file (read whole, as `read_table` reads it: one partition), a Parquet file
(one partition per row group) or a directory of Parquet files, hive partitions allowed
(`part=0003/x.parquet` adds a string column `part`), local or an fsspec URL. Partitions are in
the order of the sorted file paths (then row groups), so the same files give the same partitions
anywhere. Files and directories whose names start with "_" or "." are skipped (Spark's _SUCCESS,
the generator's temporary directory). Every file must have the first file's columns and types;
a file that differs or cannot be read stops the work with one DataError naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlgitops.config import DataConfig
from mlgitops.data.table import read_table
from mlgitops.errors import DataError

if TYPE_CHECKING:
    import dask.dataframe as dd
    from fsspec import AbstractFileSystem

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Part:
    """One partition: a file (and a row group of it, for a single Parquet file) and the hive
    key=value pairs of its directories."""

    path: str
    row_group: int | None = None
    hive: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return self.path if self.row_group is None else f"{self.path} (row group {self.row_group})"


def _filesystem(data: DataConfig) -> tuple[AbstractFileSystem, str]:
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(data.location)
    except (ImportError, ValueError) as error:
        raise DataError(f"{data.location}: cannot open: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def dataset_parts(data: DataConfig) -> list[Part]:
    """The partitions of a Parquet file or directory, in their fixed order."""
    fs, root = _filesystem(data)
    root = root.rstrip("/")
    if data.format == "parquet":
        if not fs.isfile(root):
            raise DataError(f"{data.location}: file not found")
        with fs.open(root, "rb") as handle:
            groups = _parquet_file(handle, data.location).metadata.num_row_groups
        return [Part(root, index) for index in range(max(groups, 1))]
    if not fs.isdir(root):
        what = "is a file, not a directory of Parquet files" if fs.exists(root) else "not found"
        raise DataError(f"{data.location}: {what}")
    parts: list[Part] = []
    keys: tuple[str, ...] | None = None
    for path in sorted(fs.find(root)):
        relative = path[len(root) :].lstrip("/")
        if _hidden(relative):
            continue
        if not relative.lower().endswith(PARQUET_SUFFIXES):
            raise DataError(
                f"{_join(data, relative)}: not a Parquet file (a dataset directory holds only "
                ".parquet files)"
            )
        hive = tuple(tuple(directory.split("=", 1)) for directory in relative.split("/")[:-1])
        if any(len(pair) != 2 or not pair[0] for pair in hive):
            raise DataError(f"{_join(data, relative)}: directories must be hive key=value pairs")
        these = tuple(key for key, _ in hive)
        if keys is not None and these != keys:
            raise DataError(
                f"{_join(data, relative)}: partition keys {list(these)} differ from "
                f"{list(keys)} of the files before it"
            )
        keys = these
        parts.append(Part(path, None, hive))  # type: ignore[arg-type]
    if not parts:
        raise DataError(f"{data.location}: no Parquet files in the directory")
    return parts


def _join(data: DataConfig, relative: str) -> str:
    return f"{data.location.rstrip('/')}/{relative}"


def _parquet_file(handle: Any, label: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(handle)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{label}: not a readable Parquet file: {_first_line(error)}") from None


def _empty(schema: pa.Schema, hive: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    frame = schema.empty_table().to_pandas()
    for key, _ in hive:
        frame[key] = pd.Series([], dtype="str")
    return frame


def read_part(
    part: Part,
    fs: AbstractFileSystem,
    schema: pa.Schema,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """One partition as pandas (what each Dask task runs); errors name the file."""
    hive_keys = [key for key, _ in part.hive]
    wanted = None if columns is None else [c for c in columns if c not in hive_keys]
    try:
        with fs.open(part.path, "rb") as handle:
            reader = _parquet_file(handle, part.label)
            if not reader.schema_arrow.equals(schema):
                raise DataError(f"{part.label}: {_schema_difference(reader.schema_arrow, schema)}")
            if part.row_group is None:
                table = reader.read(columns=wanted)
            else:
                table = reader.read_row_group(part.row_group, columns=wanted)
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as error:
        detail = _first_line(error)
        raise DataError(f"{part.label}: not a readable Parquet file: {detail}") from None
    frame = table.to_pandas()
    for key, value in part.hive:
        if columns is None or key in columns:
            frame[key] = pd.Series([value] * len(frame), index=frame.index, dtype="str")
    return frame if columns is None else frame[list(columns)]


def _schema_difference(found: pa.Schema, expected: pa.Schema) -> str:
    if found.names != expected.names:
        missing = [n for n in expected.names if n not in found.names]
        extra = [n for n in found.names if n not in expected.names]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if extra:
            detail.append(f"extra {', '.join(extra)}")
        return "columns differ from the dataset's first file: " + (
            "; ".join(detail) or "other order"
        )
    for name in expected.names:
        if not found.field(name).type.equals(expected.field(name).type):
            return (
                f"column {name}: type {found.field(name).type} differs from "
                f"{expected.field(name).type} in the dataset's first file"
            )
    return "schema differs from the dataset's first file (metadata)"


def _read_csv(data: DataConfig) -> pd.DataFrame:
    """A CSV file read exactly as `read_table` reads it (a URL through fsspec, same options)."""
    if not data.is_url:
        return read_table(data.path, "csv")
    import fsspec

    try:
        with fsspec.open(data.location, "rb", compression="infer") as handle:
            table = pacsv.read_csv(
                handle, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
            )
    except FileNotFoundError:
        raise DataError(f"{data.location}: file not found") from None
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{data.location}: not a readable CSV file: {_first_line(error)}") from None
    if table.num_rows == 0:
        raise DataError(f"{data.location}: has a header but no rows")
    return table.to_pandas()


def open_dataset(data: DataConfig, columns: Sequence[str] | None = None) -> dd.DataFrame:
    """data.path as a Dask DataFrame (lazy for Parquet; `columns`: only these, in this order).

    Partitions follow the sorted file paths; the index restarts in each partition. A file that
    is unreadable or differs in schema fails the computation with a DataError naming it.
    Columns have the dtypes `read_table` gives (Dask's conversion of strings to its own
    string dtype is off for this collection, so partition code sees what pandas code saw)."""
    import dask

    with dask.config.set({"dataframe.convert-string": False}):
        return _open(data, None if columns is None else list(columns))


def _open(data: DataConfig, wanted: list[str] | None) -> dd.DataFrame:
    import dask.dataframe as dd

    if data.format == "csv":
        frame = _read_csv(data)
        if wanted is not None:
            _check_columns(wanted, list(frame.columns), data.location)
            frame = frame[wanted]
        return dd.from_pandas(frame, npartitions=1, sort=False)

    fs, _ = _filesystem(data)
    parts = dataset_parts(data)
    first = parts[0]
    try:
        with fs.open(first.path, "rb") as handle:
            schema = _parquet_file(handle, first.label).schema_arrow
    except OSError as error:
        raise DataError(f"{first.label}: cannot open: {_first_line(error)}") from None
    meta = _empty(schema, first.hive)
    clash = [key for key, _ in first.hive if key in schema.names]
    if clash:
        raise DataError(f"{first.label}: hive key {clash[0]!r} is also a column of the file")
    if wanted is not None:
        _check_columns(wanted, list(meta.columns), data.location)
        meta = meta[wanted]
    return dd.from_map(
        read_part,
        parts,
        args=[fs, schema],
        columns=wanted,
        meta=meta,
        label="read-dataset",
        enforce_metadata=False,
    )


def partition_labels(data: DataConfig) -> list[str]:
    """What each partition of `open_dataset(data)` holds, by index: a file (and row group)."""
    if data.format == "csv":
        return [data.location]
    return [part.label for part in dataset_parts(data)]


def _check_columns(wanted: list[str], present: list[str], where: str) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(f"{where}: no column {', '.join(missing)}")
