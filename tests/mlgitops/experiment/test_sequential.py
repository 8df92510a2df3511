"""The always-valid test by simulation: alpha holds under repeated looks where a peeked z-test's
does not, real differences are found for the right arm, and the sample size is what it says."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mlgitops.config import ThresholdConfig
from mlgitops.experiment import sequential
from mlgitops.experiment.status import row_values

ALPHA = 0.05
RUNS = 400
LOOKS = 20
COSTS = ThresholdConfig(policy="fixed", false_positive_cost=5.0, false_negative_cost=120.0)


def _binomial_high(rate: float, runs: int, z: float = 3.0) -> float:
    return rate + z * math.sqrt(rate * (1 - rate) / runs)


def _cost_rows(
    rng: np.random.Generator, n: int, recall: np.ndarray, fpr: float = 0.02
) -> np.ndarray:
    """Per-row cost per 1,000 of a fraud model: 2.3% frauds, caught with `recall` (per row)."""
    fraud = rng.random(n) < 0.023
    alert = np.where(fraud, rng.random(n) < recall, rng.random(n) < fpr)
    return row_values("cost_per_1000", alert.astype(float), fraud.astype(float), COSTS)


def _run(
    rng: np.random.Generator, n: int, recall_b: float, min_rows: int = 200
) -> tuple[sequential.Looks, np.ndarray]:
    """One experiment on cost per 1,000 (champion recall 0.8) and its LOOKS evenly spaced."""
    challenger = rng.random(n) < 0.5
    values = _cost_rows(rng, n, np.where(challenger, recall_b, 0.8))
    looks = sequential.two_sample_looks(values, challenger, min_rows)
    at = np.linspace(n / LOOKS, n, LOOKS).astype(int) - 1
    return looks, at


def _run_rate(rng: np.random.Generator, n: int) -> tuple[sequential.Looks, np.ndarray]:
    """One A/A experiment on a rate of 30% (an alert rate, a recall among frauds)."""
    challenger = rng.random(n) < 0.5
    values = (rng.random(n) < 0.3).astype(float)
    looks = sequential.two_sample_looks(values, challenger, 200)
    return looks, np.linspace(n / LOOKS, n, LOOKS).astype(int) - 1


def _subset(looks: sequential.Looks, at: np.ndarray) -> sequential.Looks:
    return sequential.Looks(
        looks.delta[at], looks.variance[at], looks.tested[at], looks.n_champion[at],
        looks.n_challenger[at],
    )  # fmt: skip


@pytest.mark.parametrize(("metric", "tau", "n"), [("cost", 100.0, 20_000), ("rate", 0.05, 4_000)])
def test_under_no_difference_peeking_keeps_alpha_for_the_msprt_but_not_the_z_test(
    metric: str, tau: float, n: int
) -> None:
    rng = np.random.default_rng(7)
    sequential_hits = continuous_hits = z_hits = 0
    for _ in range(RUNS):
        looks, at = _run(rng, n, recall_b=0.8) if metric == "cost" else _run_rate(rng, n)
        peeked = _subset(looks, at)
        sequential_hits += sequential.decide(peeked, tau**2, ALPHA).stopped_at is not None
        # Looking after every single row: the same guarantee.
        continuous_hits += sequential.decide(looks, tau**2, ALPHA).stopped_at is not None
        z = np.abs(peeked.delta) / np.sqrt(np.where(peeked.variance > 0, peeked.variance, np.inf))
        z_hits += bool((z > stats.norm.ppf(1 - ALPHA / 2)).any())
    # Seen with this seed (cost / rate): mSPRT at 20 looks 0% / 2.0%, after every row
    # 0% / 2.75%; the z-test peeked at the same 20 looks 22.75% / 19%.
    assert sequential_hits / RUNS <= _binomial_high(ALPHA, RUNS)
    assert continuous_hits / RUNS <= _binomial_high(ALPHA, RUNS)
    assert z_hits / RUNS > 0.15  # the ~20-25% of the literature at 20 looks


def test_a_real_difference_stops_for_the_better_arm_in_most_runs() -> None:
    rng = np.random.default_rng(11)
    tau = 100.0
    better = worse = 0
    runs = 200
    for _ in range(runs):
        # The challenger catches 90% of frauds instead of 80%: about 275 per 1,000 cheaper.
        looks, at = _run(rng, 60_000, recall_b=0.9)
        decision = sequential.decide(_subset(looks, at), tau**2, ALPHA)
        if decision.stopped_at is not None:
            assert decision.delta_at_stop is not None
            better += decision.delta_at_stop < 0
            worse += decision.delta_at_stop > 0
    assert better / runs >= 0.8
    assert worse / runs <= _binomial_high(ALPHA / 2, runs)


def test_the_likelihood_ratio_is_johari_s_formula_for_equal_arms() -> None:
    sigma2, tau2, n, delta = 4.0, 0.25, 500, 0.3
    expected = math.sqrt(sigma2 / (sigma2 + n * tau2)) * math.exp(
        n**2 * tau2 * delta**2 / (2 * sigma2 * (sigma2 + n * tau2))
    )
    log_lr = sequential.log_likelihood_ratio(np.array([delta]), np.array([sigma2 / n]), tau2)
    assert math.exp(log_lr[0]) == pytest.approx(expected, rel=1e-12)


def test_the_confidence_sequence_ends_where_the_likelihood_ratio_reaches_one_over_alpha() -> None:
    variance, tau2 = 0.01, 0.04
    width = sequential.half_width(variance, tau2, ALPHA)
    log_lr = sequential.log_likelihood_ratio(np.array([width]), np.array([variance]), tau2)
    assert log_lr[0] == pytest.approx(math.log(1 / ALPHA), rel=1e-9)


def test_rows_needed_gives_the_promised_power_at_an_effect_of_the_declared_size() -> None:
    rng = np.random.default_rng(3)
    p, effect, share = 0.3, 0.05, 0.5
    unit_variance = p * (1 - p) / (1 - share) + p * (1 - p) / share
    n = int(sequential.rows_needed(unit_variance, effect, effect**2, ALPHA, 0.8))
    runs, found = 300, 0
    for _ in range(runs):
        challenger = rng.random(n) < share
        values = (rng.random(n) < np.where(challenger, p + effect, p)).astype(float)
        looks = sequential.two_sample_looks(values, challenger, 200)
        found += sequential.decide(looks, effect**2, ALPHA).ci_low > 0
    # Power about 80% at the last look (the confidence sequence excludes 0 there).
    assert 0.7 <= found / runs <= 0.9


@pytest.mark.parametrize(
    ("champion", "challenger", "share"),
    [(5000, 5000, 0.5), (9000, 1100, 0.1), (9100, 900, 0.1), (7012, 2988, 0.3), (3, 0, 0.2)],
)
def test_the_srm_statistic_is_scipy_s_chi_square(
    champion: int, challenger: int, share: float
) -> None:
    result = sequential.srm_test(champion, challenger, share)
    total = champion + challenger
    reference = stats.chisquare([champion, challenger], [total * (1 - share), total * share])
    assert result.chi2 == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
