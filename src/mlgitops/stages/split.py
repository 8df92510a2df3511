"""Stage `split`: train/validation/test split and the reference profile of the training split.

Three roles, so that no figure we report was fitted on the rows it is measured on: `train` fits
the model (and the tuning's cross-validation), `validation` chooses what is chosen after fitting
(the operating threshold, later calibration), `test` only measures (the reported metrics and the
champion/challenger gate). By time when `data.time_column` is set (test = the latest period,
validation = the period before it, as production will be), stratified by label otherwise. The
profile records what "normal" input looks like; serving and monitoring compare live traffic
against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlgitops.config import Params, SplitConfig
from mlgitops.data.prepare import encode_target, model_frame
from mlgitops.data.table import read_table
from mlgitops.errors import DataQualityError
from mlgitops.io import atomic_write, save_model_json
from mlgitops.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN, TrainingSchema, load_schema


def split_indices(
    n_rows: int, labels: np.ndarray, times: pd.Series | None, config: SplitConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row positions of (train, validation, test)."""
    positions = np.arange(n_rows)
    n_test = max(1, round(n_rows * config.test_size))
    n_validation = max(1, round(n_rows * config.validation_size))
    if n_test + n_validation >= n_rows:
        raise DataQualityError(
            f"{n_rows} rows leave no training rows at split.test_size {config.test_size} and "
            f"split.validation_size {config.validation_size}"
        )
    if times is not None:
        # Stable sort keeps generation order among equal timestamps, so ties are deterministic.
        order = np.argsort(times.to_numpy(), kind="stable")
        n_train = n_rows - n_test - n_validation
        return (
            np.sort(order[:n_train]),
            np.sort(order[n_train : n_rows - n_test]),
            np.sort(order[n_rows - n_test :]),
        )
    rest, test = train_test_split(
        positions, test_size=n_test, random_state=config.seed, stratify=labels
    )
    train, validation = train_test_split(
        rest, test_size=n_validation, random_state=config.seed, stratify=labels[rest]
    )
    return np.sort(train), np.sort(validation), np.sort(test)


def numeric_profile(values: pd.Series, bins: int) -> NumericProfile:
    present = values.dropna().to_numpy(dtype="float64")
    missing_rate = float(values.isna().mean()) if len(values) else 0.0
    if present.size == 0:
        return NumericProfile(
            count=len(values),
            missing_rate=missing_rate,
            min=None,
            max=None,
            mean=None,
            std=None,
            bin_edges=[],
            bin_fractions=[],
        )
    quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(quantiles)  # repeated values collapse bins; keep edges strictly increasing
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    return NumericProfile(
        count=len(values),
        missing_rate=missing_rate,
        min=float(present.min()),
        max=float(present.max()),
        mean=float(present.mean()),
        std=float(present.std()),
        bin_edges=[float(edge) for edge in edges],
        bin_fractions=[float(count) / present.size for count in counts],
    )


def categorical_profile(values: pd.Series, max_categories: int) -> CategoricalProfile:
    present = values.dropna()
    frequencies = present.value_counts(normalize=True, sort=True)
    # Ties broken by name so the profile file is identical run to run.
    ordered = sorted(frequencies.items(), key=lambda item: (-item[1], str(item[0])))
    kept = ordered[:max_categories]
    return CategoricalProfile(
        count=len(values),
        missing_rate=float(values.isna().mean()) if len(values) else 0.0,
        frequencies={str(key): float(value) for key, value in kept},
        truncated_fraction=float(sum(value for _, value in ordered[max_categories:])),
    )


def build_profile(
    features: pd.DataFrame, labels: np.ndarray, schema: TrainingSchema, config: SplitConfig
) -> ReferenceProfile:
    profiles = {}
    for feature in schema.features:
        column = features[feature.name]
        profiles[feature.name] = (
            numeric_profile(column, config.numeric_bins)
            if feature.kind == "numeric"
            else categorical_profile(column, config.max_profile_categories)
        )
    return ReferenceProfile(
        n_rows=len(features),
        target=schema.target,
        positive_class=schema.positive_class,
        label_rate=float(labels.mean()) if len(labels) else 0.0,
        features=profiles,
    )


def split_frame(
    table: pd.DataFrame, schema: TrainingSchema, config: SplitConfig, source: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) model frames: the features, the 0/1 target, the event time."""
    features = model_frame(table, schema, source)
    labels = encode_target(table[schema.target], schema.positive_class)
    times = None
    if schema.time_column is not None:
        times = pd.to_datetime(table[schema.time_column], utc=True, format="ISO8601")
    indices = split_indices(len(table), labels, times, config)
    frame = features.assign(**{TARGET_COLUMN: labels})
    if times is not None:
        frame[TIME_COLUMN] = times
    parts = tuple(frame.iloc[idx].reset_index(drop=True) for idx in indices)
    for name, part in zip(("train", "validation", "test"), parts, strict=True):
        if part[TARGET_COLUMN].nunique() < 2:
            raise DataQualityError(
                f"{source}: the {name} split has only one class; use more data, a different "
                "split.test_size or split.validation_size, or no data.time_column"
            )
    return parts


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    table = read_table(params.data.path, params.data.format)
    train, validation, test = split_frame(table, schema, params.split, str(params.data.path))
    profile = build_profile(
        train[schema.feature_names], train[TARGET_COLUMN].to_numpy(), schema, params.split
    )
    outputs = (
        (params.paths.train, train),
        (params.paths.validation, validation),
        (params.paths.test, test),
    )
    for path, part in outputs:
        atomic_write(path, lambda tmp, part=part: part.to_parquet(tmp, index=False))
    save_model_json(profile, params.paths.profile)
    how = f"by {schema.time_column}" if schema.time_column else "stratified"
    return (
        f"{len(train)} train / {len(validation)} validation / {len(test)} test rows ({how}), "
        f"train label rate "
        f"{profile.label_rate:.2%}, profile in {params.paths.profile}"
    )
