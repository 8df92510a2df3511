from __future__ import annotations

import pytest
from scipy.stats import binomtest

from mlgitops.reports.stats import wilson


@pytest.mark.parametrize(
    ("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (63, 233), (1158, 9767), (0, 1), (3, 7)]
)
def test_wilson_matches_scipy(k: int, n: int) -> None:
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(reference.low, abs=1e-12)
    assert high == pytest.approx(reference.high, abs=1e-12)


def test_wilson_brackets_the_rate_and_is_exact_at_the_ends() -> None:
    assert wilson(0, 50)[0] == 0.0
    assert wilson(50, 50)[1] == 1.0
    low, high = wilson(63, 233)
    assert low < 63 / 233 < high
    # The anchor's rule of thumb: 63 misses of 233 give about +/- 6 points.
    assert 0.05 < (high - low) / 2 < 0.07


def test_wilson_without_trials_is_uninformative() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"successes 5 outside \[0, 3\]"):
        wilson(5, 3)
