"""Reading input tables (CSV or Parquet) with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlgitops.errors import DataError


def read_table(path: Path, file_format: Literal["csv", "parquet"]) -> pd.DataFrame:
    """Read the whole table. Columns keep their inferred types; the schema decides later.

    pyarrow parses CSV in parallel and several times faster than pandas' C parser, which
    matters at millions of rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        if file_format == "parquet":
            table = pq.read_table(path)
        else:
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
            )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        kind = "Parquet" if file_format == "parquet" else "CSV"
        message = str(error).strip().splitlines()[0]
        raise DataError(f"{path}: not a readable {kind} file: {message}") from None
    if table.num_columns == 0:
        raise DataError(f"{path}: no columns")
    if table.num_rows == 0:
        raise DataError(f"{path}: has a header but no rows")
    duplicated = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if duplicated:
        raise DataError(f"{path}: duplicated column names: {', '.join(duplicated)}")
    return table.to_pandas()
