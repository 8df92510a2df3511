"""DeLong's test against references (sklearn's AUC, scipy's Mann-Whitney U, a brute-force O(n^2)
implementation of the structural components) and by simulation; the paired bootstrap and MDE."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from mlgitops.stats import delong, mde, paired_bootstrap_means, z


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
