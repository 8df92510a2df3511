"""Turning a raw table into model-ready columns, given the training schema.

One implementation for every stage: numeric features become float64, categorical features become
normalised strings (see `normalize_category`), missing values become NaN, the target becomes 0/1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlgitops.errors import DataError
from mlgitops.profile import normalize_category
from mlgitops.schema import TrainingSchema


def _first_bad(original: pd.Series, converted: pd.Series) -> tuple[int, object] | None:
    bad = original.notna() & converted.isna()
    if not bad.any():
        return None
    position = int(np.argmax(bad.to_numpy()))
    return position, original.iloc[position]


def not_numeric(source: str, name: str, value: object, row: int | None) -> DataError:
    """The error for a numeric column holding `value` at `row` (None: it holds booleans)."""
    if row is None:
        return DataError(f"{source}: column {name!r} is declared numeric but holds booleans")
    return DataError(
        f"{source}: column {name!r} is numeric in the schema but holds {value!r} "
        f"(row {row}); its type changed, or declare it in data.column_types"
    )


def first_not_numeric(column: pd.Series) -> tuple[int | None, object] | None:
    """Where `to_numeric` fails: (row, value), (None, None) for booleans, or None."""
    if pd.api.types.is_bool_dtype(column):
        return None, None
    if pd.api.types.is_numeric_dtype(column):
        return None
    return _first_bad(column, pd.to_numeric(column, errors="coerce"))


def to_numeric(column: pd.Series, name: str, source: str) -> pd.Series:
    """float64 values, or a DataError naming the first value that is not a number."""
    bad = first_not_numeric(column)
    if bad is not None:
        raise not_numeric(source, name, bad[1], bad[0])
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    return pd.to_numeric(column, errors="coerce").astype("float64")


def to_category(column: pd.Series) -> pd.Series:
    """Normalised category strings with NaN for missing, vectorised where the dtype allows."""
    if pd.api.types.is_float_dtype(column):
        values = column.to_numpy()
        integral = np.isfinite(values) & (np.floor(values) == values)
        if integral[~np.isnan(values)].all():
            as_int = column.astype("Int64").astype("string")
            return as_int.astype(object).where(column.notna(), np.nan)
    if pd.api.types.is_string_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(object).where(column.notna(), np.nan)
    mapped = column.map(normalize_category, na_action="ignore")
    return mapped.astype(object).where(column.notna(), np.nan)


def encode_target(column: pd.Series, positive_class: str) -> np.ndarray:
    normalized = to_category(column)
    return (normalized == positive_class).to_numpy(dtype=np.int8)


def model_frame(table: pd.DataFrame, schema: TrainingSchema, source: str) -> pd.DataFrame:
    """The feature columns in schema order, typed for the model."""
    missing = [name for name in schema.feature_names if name not in table.columns]
    if missing:
        raise DataError(f"{source}: missing feature columns: {', '.join(missing)}")
    columns = {}
    for feature in schema.features:
        raw = table[feature.name]
        columns[feature.name] = (
            to_numeric(raw, feature.name, source) if feature.kind == "numeric" else to_category(raw)
        )
    return pd.DataFrame(columns, index=table.index)
