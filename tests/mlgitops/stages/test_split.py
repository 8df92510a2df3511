from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlgitops.config import SplitConfig
from mlgitops.profile import load_profile
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN
from mlgitops.stages import split, validate


def test_time_split_puts_latest_rows_in_test(params):
    validate.run(params)
    split.run(params)
    train = pd.read_parquet(params.paths.train)
    test = pd.read_parquet(params.paths.test)
    assert len(test) == round(3000 * params.split.test_size)
    assert train[TIME_COLUMN].max() <= test[TIME_COLUMN].min()


def test_stratified_split_keeps_label_rate():
    labels = np.array([1] * 50 + [0] * 950)
    train, test = split.split_indices(1000, labels, None, SplitConfig(test_size=0.2, seed=1))
    assert len(set(train) & set(test)) == 0
    assert labels[test].mean() == pytest.approx(0.05)
    assert labels[train].mean() == pytest.approx(0.05)


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


def test_numeric_profile_with_constant_column():
    result = split.numeric_profile(pd.Series([3.0] * 10 + [None]), bins=10)
    assert result.bin_edges == [3.0]
    assert sum(result.bin_fractions) == pytest.approx(1.0)
    assert result.missing_rate == pytest.approx(1 / 11)
