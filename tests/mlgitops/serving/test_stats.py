"""Online monitoring statistics: the service's counts equal the offline binning rule's."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mlgitops.monitoring.reference import expected_outcomes, load_score_reference
from mlgitops.profile import bin_indices, bin_label, bin_labels, load_profile
from mlgitops.serving.features import FeatureSpace, validate_records
from mlgitops.serving.model import probe_records
from mlgitops.serving.stats import OnlineStats, RecentPredictions, _interp
from tests.support.devmodel import DevArtifacts


@pytest.fixture(scope="module")
def stats(dev_artifacts: DevArtifacts) -> OnlineStats:
    profile = load_profile(dev_artifacts.profile_file)
    return OnlineStats(profile, load_score_reference(dev_artifacts.score_reference_file))


def _expected_bins(profile, records) -> Counter:
    """The reference: bin_label of every raw value, one value at a time."""
    counts: Counter = Counter()
    for record in records:
        for name, spec in profile.features.items():
            counts[(name, bin_label(spec, record.get(name)))] += 1
    return counts


@pytest.mark.parametrize("rows", [1, 5, 16, 17, 300])
def test_feature_bins_match_the_profiles_binning_rule(
    dev_artifacts: DevArtifacts, stats: OnlineStats, rows: int
) -> None:
    profile = load_profile(dev_artifacts.profile_file)
    # Probe records hit bin edges, extremes, unseen categories and missing values.
    records = probe_records(profile, rows, seed=rows)
    batch = validate_records(records, FeatureSpace.from_profile(profile))
    got = Counter({stats.series[slot]: n for slot, n in stats.feature_bins(batch.columns)})
    assert got == _expected_bins(profile, records)
    # And the vectorised rule of `mlgitops monitor` agrees.
    for (name, spec), column in zip(profile.features.items(), batch.columns, strict=True):
        labels = bin_labels(spec)
        offline = Counter(labels[i] for i in bin_indices(spec, column))
        assert offline == Counter({b: n for (f, b), n in got.items() if f == name})


def test_every_series_is_known_up_front(dev_artifacts: DevArtifacts, stats: OnlineStats) -> None:
    profile = load_profile(dev_artifacts.profile_file)
    expected = [(f, b) for f, spec in profile.features.items() for b in bin_labels(spec)]
    assert stats.series == expected
    assert stats.score_labels == bin_labels(stats.reference.score)


@pytest.mark.parametrize("rows", [1, 16, 400])
def test_score_bins_and_expected_outcomes_match_the_reference(
    stats: OnlineStats, rows: int
) -> None:
    rng = np.random.default_rng(rows)
    scores = np.concatenate([rng.beta(0.5, 8, rows - 1), [stats.threshold]])
    flags = (scores >= stats.threshold).astype(int).tolist()
    bins = dict(stats.score_bins(scores.tolist()))
    assert bins == Counter(bin_label(stats.reference.score, s) for s in scores.tolist())
    got = stats.expected(scores.tolist(), flags)
    want = expected_outcomes(scores, stats.threshold, stats.reference.calibration)
    for outcome, values in want.items():
        assert got.get(outcome, 0.0) == pytest.approx(values.sum(), rel=1e-12, abs=1e-12)
    assert sum(got.values()) == pytest.approx(rows)


def test_single_value_interpolation_is_numpys() -> None:
    x, y = [0.1, 0.2, 0.5], [0.0, 0.3, 0.9]
    for value in (-1.0, 0.1, 0.15, 0.2, 0.3, 0.5, 2.0):
        assert _interp(x, y, value) == pytest.approx(float(np.interp(value, x, y)), abs=1e-15)


def test_feedback_joins_by_request_row_or_id_within_capacity() -> None:
    recent = RecentPredictions(capacity=4)
    recent.add("r1", [1, 0], ["tx1", "tx2"])
    recent.add("r2", [0, 0, 1], [None, "tx4", "tx5"])
    assert recent.label("r2", 2) == 1
    assert recent.label("other", 0, entity="tx4") == 0
    # r1's two rows were the oldest past the 4-row capacity: forgotten, not guessed.
    assert recent.label("r1", 0) is None
    assert recent.label("r2", 3) is None


def test_a_repeated_request_id_replaces_its_entry() -> None:
    recent = RecentPredictions(capacity=3)
    for _ in range(10):
        recent.add("same", [1], None)
    recent.add("other", [0, 1], None)
    # The repeats took one row, not ten: the other request is kept whole.
    assert recent.label("same", 0) == 1
    assert recent.label("other", 1) == 1


def test_the_join_cache_is_bounded_in_bytes_as_measured() -> None:
    import tracemalloc

    budget = 2 << 20
    recent = RecentPredictions(capacity=100_000, max_bytes=budget)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # Long client-chosen ids: 1000-row requests of 3.7 KB ids, as in the review.
        for r in range(40):
            ids = [f"{r}-{i}-" + "x" * 3700 for i in range(1000)]
            recent.add(f"req-{r}", [i % 2 for i in range(1000)], ids)
            held = tracemalloc.get_traced_memory()[0] - before
            # The ids list itself is the caller's; what stays is the cache's.
            del ids
            assert recent.bytes <= budget
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # The count is honest: what the cache holds, measured, is within 25% of it (and the cap).
    assert held <= budget * 1.25, held
    assert abs(held - recent.bytes) <= 0.25 * recent.bytes, (held, recent.bytes)
    # The newest ids are kept; the long ids were evicted among themselves, so they did not
    # flush the (small) entries by request id.
    assert recent.label("x", 0, entity="39-999-" + "x" * 3700) == 1
    assert recent.label("x", 0, entity="0-0-" + "x" * 3700) is None
    assert recent.label("req-0", 0) == 0
    assert recent.label("req-39", 999) == 1
