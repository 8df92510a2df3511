"""DeLong's test against references (sklearn's AUC, scipy's Mann-Whitney U, a brute-force O(n^2)
implementation of the structural components) and by simulation; the paired bootstrap and MDE;
the normal quantile and the Wilson interval against scipy and by simulation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import binomtest, mannwhitneyu, norm
from sklearn.metrics import roc_auc_score

from mlgitops.stats import (
    delong,
    mde,
    one_sided_z,
    paired_bootstrap_means,
    two_sided_z,
    wilson,
    z,
)


def brute_force_delong(labels, a, b):
    """DeLong et al. (1988) as written: psi(x, y) = 1, 1/2, 0 over every positive/negative pair."""
    labels = labels.astype(bool)
    out = []
    for scores in (a, b):
        pos, neg = scores[labels], scores[~labels]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    m, n = labels.sum(), (~labels).sum()
    s10 = np.cov(np.vstack([out[0][1], out[1][1]]))
    s01 = np.cov(np.vstack([out[0][2], out[1][2]]))
    cov = s10 / m + s01 / n
    return out[0][0], out[1][0], cov


def correlated_scores(rng, n, prevalence, signal_a, signal_b, rho):
    labels = (rng.random(n) < prevalence).astype(int)
    shared = rng.normal(size=n)
    noise_a = rho**0.5 * shared + (1 - rho) ** 0.5 * rng.normal(size=n)
    noise_b = rho**0.5 * shared + (1 - rho) ** 0.5 * rng.normal(size=n)
    return labels, signal_a * labels + noise_a, signal_b * labels + noise_b


@pytest.mark.parametrize("seed", range(4))
def test_delong_matches_the_brute_force_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels, a, b = correlated_scores(rng, 300, 0.2, 1.0, 0.7, 0.5)
    a, b = np.round(a, 1), np.round(b, 1)  # many ties
    result = delong(labels, a, b)
    auc_a, auc_b, cov = brute_force_delong(labels, a, b)
    assert result.auc_a == pytest.approx(auc_a, abs=1e-12)
    assert result.auc_b == pytest.approx(auc_b, abs=1e-12)
    assert result.auc_a == pytest.approx(roc_auc_score(labels, a), abs=1e-12)
    u = mannwhitneyu(a[labels == 1], a[labels == 0]).statistic
    assert result.auc_a == pytest.approx(u / ((labels == 1).sum() * (labels == 0).sum()))
    assert [result.var_a, result.var_b, result.cov_ab] == pytest.approx(
        [cov[0, 0], cov[1, 1], cov[0, 1]], rel=1e-10
    )


def test_delong_standard_error_matches_the_spread_over_simulated_test_sets():
    # The SE DeLong reports for one test set is the sd of the AUC difference across many.
    rng = np.random.default_rng(0)
    deltas, ses = [], []
    for _ in range(400):
        labels, a, b = correlated_scores(rng, 2000, 0.05, 1.3, 1.3, 0.7)
        result = delong(labels, a, b)
        deltas.append(result.delta)
        ses.append(result.se_delta)
    assert np.mean(ses) == pytest.approx(np.std(deltas, ddof=1), rel=0.1)


def test_the_bootstrap_is_seeded_and_its_spread_is_the_standard_error_of_the_mean():
    rng = np.random.default_rng(1)
    d = rng.choice([-120.0, 0.0, 5.0, 120.0], size=5000, p=[0.01, 0.9, 0.08, 0.01])
    boot = paired_bootstrap_means(d, reps=2000, seed=3)
    assert np.array_equal(boot, paired_bootstrap_means(d, reps=2000, seed=3))
    assert not np.array_equal(boot, paired_bootstrap_means(d, reps=2000, seed=4))
    assert boot.mean() == pytest.approx(d.mean(), abs=0.05)
    assert boot.std(ddof=1) == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)), rel=0.08)


def test_mde_is_the_difference_detected_with_the_stated_power():
    se, alpha, power = 0.011, 0.05, 0.8
    effect = mde(se, alpha, power)
    assert effect == pytest.approx(2.486 * se, rel=1e-3)
    # A one-sided z-test at alpha rejects with probability `power` when the truth is `effect`.
    rng = np.random.default_rng(2)
    estimates = rng.normal(effect, se, size=20000)
    assert np.mean(estimates / se > z(1 - alpha)) == pytest.approx(power, abs=0.01)


# The normal quantile and the Wilson interval: one of each for the gate, the report, the monitor
# and its rules. The old spellings are kept here as references, so a change of bits shows.
Z95 = 1.959963984540054  # the model report's literal before it took two_sided_z(0.95)


@pytest.mark.parametrize("p", [1e-9, 0.001, 0.025, 0.05, 0.2, 0.5, 0.8, 0.95, 0.975, 0.999])
def test_z_is_scipys_normal_quantile(p: float) -> None:
    assert z(p) == float(norm.ppf(p))
    assert z(p) == pytest.approx(NormalDist().inv_cdf(p), rel=1e-14, abs=1e-14)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99, 0.999])
def test_one_and_two_sided_z_match_scipy_bit_for_bit(confidence: float) -> None:
    # What the monitor (norm.isf) and the sequential test (norm.ppf) computed before.
    assert one_sided_z(confidence) == float(norm.isf(1.0 - confidence))
    assert one_sided_z(confidence) == float(norm.ppf(confidence))
    assert two_sided_z(confidence) == float(norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    assert two_sided_z(confidence) == pytest.approx(float(norm.isf((1.0 - confidence) / 2.0)))


def test_two_sided_z_at_95_percent_is_the_reports_constant() -> None:
    assert two_sided_z(0.95) == Z95


def _wilson_with_z(successes: float, trials: float, z_: float) -> tuple[float, float]:
    """The report's former closed form, the reference for byte-identical intervals."""
    p = successes / trials
    denominator = 1.0 + z_ * z_ / trials
    centre = (p + z_ * z_ / (2 * trials)) / denominator
    half = z_ * math.sqrt(p * (1 - p) / trials + z_ * z_ / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


WILSON_CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (63, 233), (1158, 9767), (0, 1), (3, 7)]
WILSON_CASES += [(0, 30), (2, 30), (30, 1000), (999, 1000), (5, 5)]


@pytest.mark.parametrize(("k", "n"), WILSON_CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k: int, n: int, confidence: float) -> None:
    reference = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson(k, n, confidence)
    assert low == pytest.approx(reference.low, abs=1e-12)
    assert high == pytest.approx(reference.high, abs=1e-12)


def test_wilson_at_95_percent_is_the_reports_former_interval_bit_for_bit() -> None:
    for n in (1, 2, 7, 30, 233, 1000, 9767):
        for k in range(0, n + 1, max(1, n // 17)):
            assert wilson(k, n) == _wilson_with_z(k, n, Z95)


def test_wilson_takes_expected_counts() -> None:
    # CBPE's expected false positives are sums of probabilities, not integers.
    low, high = wilson(12.37, 400.0, 0.99)
    assert low < 12.37 / 400 < high
    assert (low, high) == _wilson_with_z(12.37, 400.0, float(norm.ppf(0.995)))


def test_wilson_brackets_the_rate_and_is_exact_at_the_ends() -> None:
    assert wilson(0, 50)[0] == 0.0
    assert wilson(50, 50)[1] == 1.0
    low, high = wilson(63, 233)
    assert low < 63 / 233 < high
    # The anchor's rule of thumb: 63 misses of 233 give about +/- 6 points.
    assert 0.05 < (high - low) / 2 < 0.07


def test_wilson_without_trials_is_uninformative() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        wilson(5, 3)


def test_wilson_covers_at_its_confidence_by_simulation() -> None:
    # Coverage of a discrete interval oscillates with the rate; averaged over rates it is close
    # to nominal (Brown, Cai & DasGupta 2001).
    rng = np.random.default_rng(21)
    n = 200
    rates = rng.uniform(0.02, 0.5, size=4000)
    ks = rng.binomial(n, rates)
    intervals = [wilson(k, n, 0.9) for k in ks]
    covered = np.mean([low <= r <= high for (low, high), r in zip(intervals, rates, strict=True)])
    assert covered == pytest.approx(0.9, abs=0.015)
