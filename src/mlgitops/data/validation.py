"""The training schema and the data's quality checks, shared by stage `validate` and
`mlgitops data ingest` (which validates the combined table exactly as the stage does).

Declared column types (params.yaml `data.column_types`) are enforced; undeclared ones are
inferred. Anything that would make training meaningless stops the pipeline with a DataError
naming the file, the column and the value, before any artifact is written.

The checks run as per-partition reductions merged exactly (mlgitops.partitions), on a pandas
table (one partition) or a Dask DataFrame (any partitioning, the same report and schema):
row and missing counts and class counts are integers summed over partitions; the first bad
value of a column is the one at the lowest global row (a partition's offset plus its own row);
column types are the frame's dtypes. Distinct counts are exact: pandas' nunique on a pandas
table; on a Dask one, the partitions' distinct values merged on the driver while they are few
(_FEW_DISTINCT), else Dask's hash-partitioned drop_duplicates (no column reaches the driver; a
worker holds about a partition's share of the column's distinct values). Target classes are
counted up to _MAX_CLASSES per partition: a target with more is reported as such, not counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlgitops import partitions
from mlgitops.config import DataConfig, ValidateConfig
from mlgitops.data.prepare import first_not_numeric, not_numeric, to_category
from mlgitops.errors import DataError, DataQualityError
from mlgitops.profile import normalize_category
from mlgitops.schema import FeatureSpec, TrainingSchema

if TYPE_CHECKING:
    import dask.dataframe as dd

# A binary target has two; beyond this many per partition the count is not worth its memory.
_MAX_CLASSES = 1000
# Columns with at most this many distinct values (in each partition and in all) are counted from
# the partitions' own distinct values, merged on the driver; others by Dask's shuffle.
_FEW_DISTINCT = 1 << 14


class ColumnReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    role: str  # feature, target, time, dropped
    kind: str | None
    source: str | None
    missing_rate: float
    distinct_values: int
    note: str | None = None


class ValidationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    data_path: str
    n_rows: int
    n_features: int
    label_counts: dict[str, int]
    positive_class: str
    label_rate: float
    columns: list[ColumnReport]
    checks: dict[str, str]


class _ColumnFacts:
    """What the checks need to know about one column, merged over all partitions."""

    def __init__(self, dtype: Any, rows: int, missing: int, distinct: int) -> None:
        self.dtype = dtype
        self.rows = rows
        self.missing = missing
        self.distinct = distinct


def _first(found: list[tuple[int, Any] | None], starts: list[int]) -> tuple[int, Any] | None:
    """The partition answer at the lowest global row, as (global row, value)."""
    for start, answer in zip(starts, found, strict=True):
        if answer is not None:
            return start + answer[0], answer[1]
    return None


def _inferred_kind(facts: _ColumnFacts, config: DataConfig) -> tuple[str, str | None]:
    """('numeric' | 'categorical' | 'drop', why it is dropped)."""
    if facts.missing == facts.rows:
        return "drop", "no values"
    if pd.api.types.is_datetime64_any_dtype(facts.dtype):
        return "drop", "a timestamp is not a feature (set data.time_column to split by it)"
    if pd.api.types.is_bool_dtype(facts.dtype):
        return "categorical", None
    if pd.api.types.is_numeric_dtype(facts.dtype):
        return "numeric", None
    present = facts.rows - facts.missing
    if present > 50 and facts.distinct / present > config.id_unique_fraction:
        return "drop", "looks like an identifier (almost every value is distinct)"
    return "categorical", None


def _check_columns(columns: list[str], config: DataConfig, source: str) -> None:
    if config.target not in columns:
        raise DataError(
            f"{source}: target column {config.target!r} (data.target) not found; "
            f"columns are: {', '.join(map(str, columns))}"
        )
    if config.time_column is not None and config.time_column not in columns:
        raise DataError(
            f"{source}: time column {config.time_column!r} (data.time_column) not found"
        )
    undeclared = sorted(set(config.column_types) - set(columns))
    if undeclared:
        raise DataError(
            f"{source}: columns declared in data.column_types are missing: {', '.join(undeclared)}"
        )
    if config.id_column is not None and config.id_column not in columns:
        raise DataError(f"{source}: id column {config.id_column!r} (data.id_column) not found")


def _declared_numeric(columns: list[str], config: DataConfig) -> list[str]:
    return [
        name
        for name in columns
        if config.column_types.get(name) == "numeric"
        and name not in (config.target, config.time_column, config.id_column)
    ]


def _class_work(column: pd.Series) -> dict[str, Any]:
    """Class counts of the target with each class's first row, and the first missing row."""
    missing = column.isna()
    codes, classes = pd.factorize(to_category(column), use_na_sentinel=True)
    present = codes[codes >= 0]
    counts = pd.Series(present).value_counts(sort=False).sort_index()
    firsts = pd.Series(range(len(codes)))[codes >= 0].groupby(present).min()
    truncated = len(classes) > _MAX_CLASSES
    return {
        "missing": int(missing.sum()),
        "first_missing": partitions.first_position(missing),
        "classes": [
            (str(classes[code]), int(counts[code]), int(firsts[code]))
            for code in range(min(len(classes), _MAX_CLASSES))
        ],
        "truncated": truncated,
    }


def _time_work(column: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        parsed = pd.to_datetime(column, errors="coerce", utc=True, format="ISO8601")
    bad = partitions.first_position(column.notna() & parsed.isna())
    return {
        "bad": None if bad is None else (bad, column.iloc[bad]),
        "missing": bool(parsed.isna().any()),
    }


def _table_work(
    part: pd.DataFrame, index: int, config: DataConfig, distinct: bool
) -> dict[str, Any]:
    columns = [str(name) for name in part.columns]
    answer: dict[str, Any] = {
        "rows": len(part),
        "missing": {name: int(part[name].isna().sum()) for name in columns},
        "not_numeric": {
            name: first_not_numeric(part[name]) for name in _declared_numeric(columns, config)
        },
        "target": _class_work(part[config.target]),
        "distinct": {name: _few_distinct(part[name]) for name in columns} if distinct else {},
    }
    if config.time_column is not None:
        answer["time"] = _time_work(part[config.time_column])
    return answer


def _few_distinct(column: pd.Series) -> pd.Series | None:
    """The column's distinct values if there are few, else None."""
    distinct = column.dropna().drop_duplicates()
    return distinct if len(distinct) <= _FEW_DISTINCT else None


def _merged_distinct(found: list[pd.Series | None]) -> int | None:
    """nunique over all partitions from their distinct values, or None if there are many."""
    merged: pd.Series | None = None
    for distinct in found:
        if distinct is None:
            return None
        merged = distinct if merged is None else pd.concat([merged, distinct]).drop_duplicates()
        if len(merged) > _FEW_DISTINCT:
            return None
    return 0 if merged is None else int(merged.nunique(dropna=True))


def _distinct_counts(
    frame: Any, answers: list[dict[str, Any]], columns: list[str]
) -> dict[str, int]:
    if not partitions.is_dask(frame):
        return {name: int(frame[name].nunique(dropna=True)) for name in columns}
    import dask

    counts = {name: _merged_distinct([a["distinct"][name] for a in answers]) for name in columns}
    many = [name for name, count in counts.items() if count is None]
    shuffled = []
    for name in many:
        column = frame[name]
        if pd.api.types.is_float_dtype(column.dtype):
            # -0.0 and 0.0 are one value to nunique but hash to different partitions.
            column = column + 0.0
        shuffled.append(column.nunique(dropna=True))
    counts.update(zip(many, (int(c) for c in dask.compute(*shuffled)), strict=True))
    return {name: int(counts[name]) for name in columns}  # type: ignore[arg-type]


def _check_target(
    answers: list[dict[str, Any]], starts: list[int], config: DataConfig, source: str
) -> dict[str, int]:
    missing = sum(a["missing"] for a in answers)
    if missing:
        first = _first(
            [None if a["first_missing"] is None else (a["first_missing"], None) for a in answers],
            starts,
        )
        assert first is not None
        raise DataQualityError(
            f"{source}: target {config.target!r} has {missing} missing values "
            f"(first at row {first[0]})"
        )
    merged: dict[str, list[int]] = {}
    for start, answer in zip(starts, answers, strict=True):
        for name, count, first_row in answer["classes"]:
            if name in merged:
                merged[name][0] += count
            else:
                merged[name] = [count, start + first_row]
    truncated = any(a["truncated"] for a in answers) or len(merged) > _MAX_CLASSES
    # pandas' value_counts order: most frequent first, ties in order of first appearance.
    classes = sorted(merged, key=lambda name: (-merged[name][0], merged[name][1]))
    if truncated or len(classes) != 2:
        found = f"more than {_MAX_CLASSES}" if truncated else str(len(classes))
        shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
        raise DataQualityError(
            f"{source}: target {config.target!r} must have exactly two classes, "
            f"found {found}: {shown}"
        )
    positive = normalize_category(config.positive_class)
    if positive not in classes:
        raise DataQualityError(
            f"{source}: data.positive_class {config.positive_class!r} is not a value of target "
            f"{config.target!r} (values: {', '.join(classes)})"
        )
    return {name: merged[name][0] for name in classes}


def _check_time(answers: list[dict[str, Any]], starts: list[int], name: str, source: str) -> None:
    bad = _first([a["bad"] for a in answers], starts)
    if bad is not None:
        raise DataError(
            f"{source}: time column {name!r} holds {bad[1]!r} at row {bad[0]}, not a timestamp"
        )
    if any(a["missing"] for a in answers):
        raise DataQualityError(f"{source}: time column {name!r} has missing values")


def check_time_column(column: pd.Series, name: str, source: str) -> None:
    _check_time([_time_work(column)], [0], name, source)


def _infer_schema(
    columns: list[str],
    facts: dict[str, _ColumnFacts],
    not_numeric_at: dict[str, tuple[int | None, Any] | None],
    config: DataConfig,
    source: str,
) -> TrainingSchema:
    features: list[FeatureSpec] = []
    dropped: list[str] = []
    for name in columns:
        if name in (config.target, config.time_column):
            continue
        declared = config.column_types.get(name)
        if declared == "drop" or name == config.id_column:
            dropped.append(name)
            continue
        if declared == "numeric":
            bad = not_numeric_at[name]
            if bad is not None:  # the column's type changed
                raise not_numeric(source, name, bad[1], bad[0])
            features.append(FeatureSpec(name=name, kind="numeric", source="declared"))
        elif declared == "categorical":
            features.append(FeatureSpec(name=name, kind="categorical", source="declared"))
        else:
            kind, _ = _inferred_kind(facts[name], config)
            if kind == "drop":
                dropped.append(name)
            else:
                features.append(FeatureSpec(name=name, kind=kind, source="inferred"))
    if not features:
        raise DataQualityError(f"{source}: no usable feature columns besides the target")
    return TrainingSchema(
        target=config.target,
        positive_class=normalize_category(config.positive_class) or "",
        time_column=config.time_column,
        features=tuple(features),
        dropped_columns=tuple(dropped),
        id_column=config.id_column,
    )


def validate_frame(
    frame: pd.DataFrame | dd.DataFrame, data: DataConfig, checks: ValidateConfig, source: str
) -> tuple[TrainingSchema, ValidationReport]:
    """The schema and the report of a table, pandas or Dask; the same for any partitioning."""
    columns = [str(name) for name in frame.columns]
    _check_columns(columns, data, source)
    answers = partitions.run_pass(
        partitions.partitions_of(frame), _table_work, data, partitions.is_dask(frame)
    )
    row_counts = [a["rows"] for a in answers]
    starts = partitions.offsets(row_counts)
    n_rows = sum(row_counts)

    not_numeric_at = {}
    for name in _declared_numeric(columns, data):
        found = [a["not_numeric"][name] for a in answers]
        booleans = any(f is not None and f[0] is None for f in found)
        not_numeric_at[name] = (None, None) if booleans else _first(found, starts)
    # Distinct counts only once the declared types hold (they cost a pass of their own).
    for name, bad in not_numeric_at.items():
        if bad is not None:
            raise not_numeric(source, name, bad[1], bad[0])
    distinct = _distinct_counts(frame, answers, columns)
    dtypes = dict(zip(columns, frame.dtypes, strict=True))
    facts = {
        name: _ColumnFacts(
            dtypes[name], n_rows, sum(a["missing"][name] for a in answers), distinct[name]
        )
        for name in columns
    }
    schema = _infer_schema(columns, facts, not_numeric_at, data, source)
    label_counts = _check_target([a["target"] for a in answers], starts, data, source)
    if data.time_column is not None:
        _check_time([a["time"] for a in answers], starts, data.time_column, source)

    if n_rows < checks.min_rows:
        raise DataQualityError(
            f"{source}: {n_rows} rows, fewer than validate.min_rows={checks.min_rows}"
        )
    positives = label_counts[schema.positive_class]
    if positives < checks.min_positive:
        raise DataQualityError(
            f"{source}: {positives} rows of the positive class {schema.positive_class!r}, "
            f"fewer than validate.min_positive={checks.min_positive}"
        )

    reports = []
    kinds = {feature.name: feature for feature in schema.features}
    for name in columns:
        column = facts[name]
        missing_rate = column.missing / n_rows if n_rows else float("nan")
        if name in kinds:
            if missing_rate > checks.max_missing_fraction:
                raise DataQualityError(
                    f"{source}: column {name!r} is {missing_rate:.1%} missing, more than "
                    f"validate.max_missing_fraction={checks.max_missing_fraction}"
                )
            role, kind, origin = "feature", kinds[name].kind, kinds[name].source
        elif name == data.target:
            role, kind, origin = "target", None, None
        elif name == data.time_column:
            role, kind, origin = "time", None, None
        else:
            role, kind, origin = "dropped", None, None
        note = None
        if role == "dropped":
            note = (
                "declared drop"
                if data.column_types.get(name) == "drop"
                else _inferred_kind(column, data)[1]
            )
        reports.append(
            ColumnReport(
                name=name,
                role=role,
                kind=kind,
                source=origin,
                missing_rate=missing_rate,
                distinct_values=column.distinct,
                note=note,
            )
        )
    report = ValidationReport(
        data_path=source,
        n_rows=n_rows,
        n_features=len(schema.features),
        label_counts=label_counts,
        positive_class=schema.positive_class,
        label_rate=positives / n_rows,
        columns=reports,
        checks={
            "target_binary": "passed",
            "positive_class_present": "passed",
            "min_rows": f"passed ({n_rows} >= {checks.min_rows})",
            "min_positive": f"passed ({positives} >= {checks.min_positive})",
            "max_missing_fraction": f"passed (<= {checks.max_missing_fraction})",
            "declared_types": f"passed ({len(data.column_types)} declared)",
        },
    )
    return schema, report


def validate_table(
    table: pd.DataFrame, data: DataConfig, checks: ValidateConfig, source: str
) -> tuple[TrainingSchema, ValidationReport]:
    """`validate_frame` of an in-memory table (one partition)."""
    return validate_frame(table, data, checks, source)
