"""The one binning rule: vectorised and scalar forms agree, and match the profile's own counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlgitops.profile import (
    MISSING_BIN,
    UNSEEN_BIN,
    CategoricalProfile,
    bin_indices,
    bin_label,
    bin_labels,
    reference_fractions,
)
from mlgitops.profiling import categorical_profile, numeric_profile


def test_numeric_bins_reproduce_the_profile_fractions():
    values = pd.Series(np.random.default_rng(0).gamma(2.0, 10.0, 5000)).where(lambda s: s > 1.0)
    profile = numeric_profile(values, 10)
    index = bin_indices(profile, values.to_numpy())
    counts = np.bincount(index, minlength=len(bin_labels(profile))) / len(values)
    assert counts == pytest.approx(reference_fractions(profile))
    assert reference_fractions(profile).sum() == pytest.approx(1.0)
    assert bin_labels(profile)[-1] == MISSING_BIN


def test_scalar_and_vector_forms_agree_on_edges_and_gaps():
    profile = numeric_profile(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 3)
    probes = [0.0, *profile.bin_edges, 3.5, 100.0, float("nan")]
    vector = [bin_labels(profile)[i] for i in bin_indices(profile, np.array(probes))]
    assert vector == [bin_label(profile, v) for v in probes]
    assert bin_label(profile, None) == MISSING_BIN


def test_categorical_bins_have_unseen_and_missing():
    profile = categorical_profile(pd.Series(["a", "a", "b", None, "c"]), max_categories=2)
    assert bin_labels(profile) == ["a", "b", UNSEEN_BIN, MISSING_BIN]
    assert reference_fractions(profile).sum() == pytest.approx(1.0)
    index = bin_indices(profile, np.array(["b", "z", None, float("nan"), "a"], dtype=object))
    assert [bin_labels(profile)[i] for i in index] == ["b", UNSEEN_BIN, "missing", "missing", "a"]
    assert bin_label(profile, "c") == UNSEEN_BIN  # truncated from the profile counts as unseen


def test_integral_floats_match_integer_categories():
    profile = CategoricalProfile(count=2, missing_rate=0.0, frequencies={"3": 1.0})
    assert bin_label(profile, 3.0) == "3"
    assert bin_indices(profile, np.array([], dtype=object)).size == 0


def test_arrow_strings_take_the_same_bins():
    profile = categorical_profile(pd.Series(["a", "a", "b", None]), max_categories=5)
    values = ["b", "z", None, "a"]
    arrow = bin_indices(profile, pd.Series(values, dtype="string[pyarrow]"))
    assert arrow.tolist() == bin_indices(profile, np.array(values, dtype=object)).tolist()


def test_numeric_profile_with_constant_column():
    result = numeric_profile(pd.Series([3.0] * 10 + [None]), bins=10)
    assert result.bin_edges == [3.0]
    assert sum(result.bin_fractions) == pytest.approx(1.0)
    assert result.missing_rate == pytest.approx(1 / 11)
