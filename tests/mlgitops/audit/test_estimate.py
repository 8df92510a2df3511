from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from mlgitops.audit.design import assign, draw, plan, stratum_edges
from mlgitops.audit.estimate import METRICS, clopper_pearson, cohen_kappa, estimates
from mlgitops.config import AuditConfig
from tests.support import audit

THRESHOLD = 0.04


def _truth(people: audit.Population) -> dict[str, float]:
    y, f = people.truth, people.scores >= THRESHOLD
    return {
        "precision": y[f].mean(),
        "fpr": (f & (y == 0)).sum() / (y == 0).sum(),
        "fnr": (~f & (y == 1)).sum() / (y == 1).sum(),
        "fraud_rate": y.mean(),
    }


def _coverage(people: audit.Population, size: int, runs: int) -> dict[str, int]:
    config = AuditConfig()
    strata = plan(people.scores, THRESHOLD, size, config)
    index = assign(people.scores, stratum_edges(config.score_bands, THRESHOLD))
    sizes = np.array([s.population for s in strata], dtype=float)
    truth = _truth(people)
    covered = dict.fromkeys(METRICS, 0)
    for seed in range(runs):
        picked = draw(index, strata, seed)
        found = estimates(
            index[picked],
            people.truth[picked],
            (people.scores[picked] >= THRESHOLD).astype(float),
            sizes,
            0.95,
        )
        for e in found:
            covered[e.metric] += e.low <= truth[e.metric] <= e.high
    return covered


@pytest.mark.parametrize("calibration", [1.0, 2.0], ids=["calibrated", "scores-too-low"])
def test_intervals_cover_the_truth_at_their_nominal_rate(calibration):
    # A population like the default model's traffic (2% fraud, 12% flagged), audited with
    # the default 500 labels; the model's scores are calibrated, or half the true fraud
    # probability (what an audit is for).
    people = audit.population(14_000, seed=11, calibration=calibration)
    runs = 200
    covered = _coverage(people, AuditConfig().sample_size, runs)
    # 95% intervals: the count covered is Binomial(200, 0.95) if they are right.
    low, high = stats.binom.ppf([0.0005, 0.9995], runs, 0.95)
    for metric, count in covered.items():
        assert low <= count <= high, (metric, count / runs)


def test_a_census_recovers_the_population_exactly():
    people = audit.population(3000, seed=4)
    config = AuditConfig()
    strata = plan(people.scores, THRESHOLD, 3000, config)
    index = assign(people.scores, stratum_edges(config.score_bands, THRESHOLD))
    sizes = np.array([s.population for s in strata], dtype=float)
    flagged = (people.scores >= THRESHOLD).astype(float)
    truth = _truth(people)
    for e in estimates(index, people.truth, flagged, sizes, 0.95):
        assert e.estimate == pytest.approx(truth[e.metric], abs=1e-12)
        assert e.standard_error == 0.0
        assert e.low <= e.estimate <= e.high


def test_clopper_pearson_matches_scipy():
    for successes, trials in [(0, 10), (3, 40), (17, 17), (250, 1000)]:
        ours = clopper_pearson(successes / trials, trials, 0.95)
        theirs = stats.binomtest(successes, trials).proportion_ci(0.95, method="exact")
        assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-12)


def test_kappa_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        first = rng.integers(0, 2, n)
        # The second rater agrees with the first at a random rate.
        second = np.where(rng.random(n) < rng.random(), first, rng.integers(0, 2, n))
        if len(set(first)) == 1 and len(set(second)) == 1:
            assert cohen_kappa(first, second) is None
            continue
        assert cohen_kappa(first, second) == pytest.approx(
            cohen_kappa_score(first, second), abs=1e-12
        )
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) is None
    assert cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
