from __future__ import annotations

import pandas as pd
import pytest

from mlgitops.config import parse_params
from mlgitops.profile import load_profile
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN
from mlgitops.stages import split, validate


def test_time_split_puts_latest_rows_in_test_and_the_period_before_in_validation(params):
    validate.run(params)
    split.run(params)
    train = pd.read_parquet(params.paths.train)
    validation = pd.read_parquet(params.paths.validation)
    test = pd.read_parquet(params.paths.test)
    assert len(test) == round(3000 * params.split.test_size)
    assert len(validation) == round(3000 * params.split.validation_size)
    assert len(train) + len(validation) + len(test) == 3000
    assert train[TIME_COLUMN].max() <= validation[TIME_COLUMN].min()
    assert validation[TIME_COLUMN].max() <= test[TIME_COLUMN].min()


def test_sizes_that_leave_no_training_rows_are_refused():
    from mlgitops.errors import ConfigError
    from tests.support.project import raw_params

    raw = raw_params()
    raw["split"].update(test_size=0.5, validation_size=0.5)
    with pytest.raises(ConfigError, match="split: .*validation_size must be below 1"):
        parse_params(raw)


def test_profile_describes_training_split(params):
    validate.run(params)
    split.run(params)
    profile = load_profile(params.paths.profile)
    train = pd.read_parquet(params.paths.train)
    assert profile.n_rows == len(train)
    assert profile.label_rate == pytest.approx(train[TARGET_COLUMN].mean())
    amount = profile.features["amount"]
    assert amount.kind == "numeric"
    assert sum(amount.bin_fractions) == pytest.approx(1.0)
    assert len(amount.bin_fractions) == len(amount.bin_edges) + 1
    category = profile.features["merchant_category"]
    assert sum(category.frequencies.values()) == pytest.approx(1.0)
    assert profile.allows_missing("customer_age")
    assert not profile.allows_missing("amount")
    assert list(profile.features) == [
        c for c in train.columns if c not in (TARGET_COLUMN, TIME_COLUMN)
    ]
