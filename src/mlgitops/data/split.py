"""The train/validation/test split of the dataset, by time or stratified by label.

Three roles, so that no figure we report was fitted on the rows it is measured on: `train` fits
the model (and the tuning's cross-validation), `validation` chooses what is chosen after fitting
(the operating threshold, later calibration), `test` only measures (the reported metrics and the
champion/challenger gate). By time when `data.time_column` is set (test = the latest period,
validation = the period before it, as production will be), stratified by label otherwise.
Stage `split` writes the parts; `mlgitops report pr` splits a head's data again under the base's
split settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlgitops.config import SplitConfig
from mlgitops.data.prepare import encode_target, model_frame
from mlgitops.errors import DataQualityError
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN, TrainingSchema


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
