"""The train/validation/test split's rules (stage `split` and `report pr` use them)."""

from __future__ import annotations

import numpy as np
import pytest

from mlgitops.config import SplitConfig
from mlgitops.data.split import split_indices


def test_stratified_split_keeps_label_rate_in_all_three_parts():
    labels = np.array([1] * 100 + [0] * 1900)
    config = SplitConfig(test_size=0.2, validation_size=0.25, seed=1)
    train, validation, test = split_indices(2000, labels, None, config)
    assert (len(train), len(validation), len(test)) == (1100, 500, 400)
    assert len(set(train) | set(validation) | set(test)) == 2000
    for part in (train, validation, test):
        assert labels[part].mean() == pytest.approx(0.05)
    again = split_indices(2000, labels, None, config)
    assert all(np.array_equal(a, b) for a, b in zip((train, validation, test), again, strict=True))
