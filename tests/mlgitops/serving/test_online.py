"""Online monitoring statistics: the service's counts equal the offline binning rule's."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mlgitops.monitoring.reference import expected_outcomes, load_score_reference
from mlgitops.profile import bin_indices, bin_label, bin_labels, load_profile
from mlgitops.serving.features import FeatureSpace, validate_records
from mlgitops.serving.model import probe_records
from mlgitops.serving.online import OnlineStats, RecentPredictions, _interp
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


def test_feedback_joins_by_request_and_row_within_capacity() -> None:
    recent = RecentPredictions(capacity=4)
    recent.add("r1", [1, 0], ["tx1", "tx2"])
    recent.add("r2", [0, 0, 1], [None, "tx4", "tx5"])
    assert recent.label("r2", 2) == 1
    assert recent.get("r2").entity(1) == "tx4"
    # r1's two rows were the oldest past the 4-row capacity: forgotten, not guessed.
    assert recent.label("r1", 0) is None
    assert recent.label("r2", 3) is None
    assert (recent.rows, len(recent)) == (3, 1)


def test_an_id_added_again_replaces_its_entry_without_inflating_the_count() -> None:
    """A repeated key (security review M9: 1000 adds of one id into a cache of 1000 left 0
    entries and a row count of 999) replaces its entry and counts its rows once."""
    recent = RecentPredictions(capacity=1000)
    recent.add("other-client", [1], None)
    for _ in range(1000):
        recent.add("same", [0], None)
    assert (recent.rows, len(recent)) == (2, 2)
    assert recent.label("other-client", 0) == 1
    recent.add("next", [1, 1], None)
    assert recent.label("next", 1) == 1
    assert recent.rows == 4


def test_the_cache_is_bounded_in_bytes_with_long_ids() -> None:
    """Security review H3: 120 requests of 1,000 rows with 3.7 KB ids grew a worker by 380 MB.
    The cache's own accounting stays under its byte bound, and so does the memory it holds."""
    import gc
    import tracemalloc

    bound = 8 << 20
    recent = RecentPredictions(capacity=100_000, capacity_bytes=bound)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for request in range(120):
            ids = [f"{request:04d}-{row:04d}-" + "x" * 3700 for row in range(1000)]
            recent.add(f"req-{request}", [row % 2 for row in range(1000)], ids)
            del ids
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert recent.bytes <= bound
    assert held <= 1.1 * bound, f"{held / 2**20:.1f} MiB held for a bound of 8 MiB"
    assert len(recent) == 2  # 3.8 MB a request
    # The newest request is joinable; one larger than the whole cache is kept nowhere.
    assert recent.label("req-119", 999) == 1
    recent.add("huge", [0] * 10, ["y" * (bound + 1)] + [None] * 9)
    assert recent.get("huge") is None
    assert recent.label("req-119", 0) == 0
