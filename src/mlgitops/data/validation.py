"""The training schema and the data's quality checks, shared by stage `validate` and
`mlgitops data ingest` (which validates the combined table exactly as the stage does).

Declared column types (params.yaml `data.column_types`) are enforced; undeclared ones are
inferred. Anything that would make training meaningless stops the pipeline with a DataError
naming the file, the column and the value, before any artifact is written.
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlgitops.config import DataConfig, ValidateConfig
from mlgitops.data.prepare import to_category, to_numeric
from mlgitops.errors import DataError, DataQualityError
from mlgitops.profile import normalize_category
from mlgitops.schema import FeatureSpec, TrainingSchema


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


def _inferred_kind(column: pd.Series, config: DataConfig) -> tuple[str, str | None]:
    """('numeric' | 'categorical' | 'drop', why it is dropped)."""
    if column.isna().all():
        return "drop", "no values"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "drop", "a timestamp is not a feature (set data.time_column to split by it)"
    if pd.api.types.is_bool_dtype(column):
        return "categorical", None
    if pd.api.types.is_numeric_dtype(column):
        return "numeric", None
    non_missing = column.dropna()
    if (
        len(non_missing) > 50
        and non_missing.nunique() / len(non_missing) > config.id_unique_fraction
    ):
        return "drop", "looks like an identifier (almost every value is distinct)"
    return "categorical", None


def infer_schema(table: pd.DataFrame, config: DataConfig, source: str) -> TrainingSchema:
    columns = list(table.columns)
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

    features: list[FeatureSpec] = []
    dropped: list[str] = []
    for name in columns:
        if name in (config.target, config.time_column):
            continue
        column = table[name]
        declared = config.column_types.get(name)
        if declared == "drop" or name == config.id_column:
            dropped.append(name)
            continue
        if declared == "numeric":
            to_numeric(column, name, source)  # raises if the column's type changed
            features.append(FeatureSpec(name=name, kind="numeric", source="declared"))
        elif declared == "categorical":
            features.append(FeatureSpec(name=name, kind="categorical", source="declared"))
        else:
            kind, _ = _inferred_kind(column, config)
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


def check_target(column: pd.Series, config: DataConfig, source: str) -> dict[str, int]:
    missing = int(column.isna().sum())
    if missing:
        first = int(column.isna().to_numpy().argmax())
        raise DataQualityError(
            f"{source}: target {config.target!r} has {missing} missing values "
            f"(first at row {first})"
        )
    counts = to_category(column).value_counts()
    classes = [str(value) for value in counts.index]
    if len(classes) != 2:
        shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
        raise DataQualityError(
            f"{source}: target {config.target!r} must have exactly two classes, "
            f"found {len(classes)}: {shown}"
        )
    positive = normalize_category(config.positive_class)
    if positive not in classes:
        raise DataQualityError(
            f"{source}: data.positive_class {config.positive_class!r} is not a value of target "
            f"{config.target!r} (values: {', '.join(classes)})"
        )
    return {str(key): int(value) for key, value in counts.items()}


def check_time_column(column: pd.Series, name: str, source: str) -> None:
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        parsed = pd.to_datetime(column, errors="coerce", utc=True, format="ISO8601")
    bad = column.notna() & parsed.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(
            f"{source}: time column {name!r} holds {column.iloc[row]!r} at row {row}, "
            "not a timestamp"
        )
    if parsed.isna().any():
        raise DataQualityError(f"{source}: time column {name!r} has missing values")


def validate_table(
    table: pd.DataFrame, data: DataConfig, checks: ValidateConfig, source: str
) -> tuple[TrainingSchema, ValidationReport]:
    schema = infer_schema(table, data, source)
    label_counts = check_target(table[data.target], data, source)
    if data.time_column is not None:
        check_time_column(table[data.time_column], data.time_column, source)

    n_rows = len(table)
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
    for name in table.columns:
        column = table[name]
        missing_rate = float(column.isna().mean())
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
                name=str(name),
                role=role,
                kind=kind,
                source=origin,
                missing_rate=missing_rate,
                distinct_values=int(column.nunique(dropna=True)),
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
