"""The statistics against scipy, and the false-alarm rate of the PSI threshold by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from mlgitops.monitoring import drift_stats


def test_psi_matches_the_formula_on_smoothed_shares():
    ref = np.array([100.0, 200.0, 300.0, 400.0])
    cur = np.array([40.0, 20.0, 30.0, 10.0])
    r = (ref + 0.5) / (ref.sum() + 2.0)
    c = (cur + 0.5) / (cur.sum() + 2.0)
    assert drift_stats.psi(ref, cur) == pytest.approx(float(((c - r) * np.log(c / r)).sum()))
    assert drift_stats.psi(ref, ref / 10) == pytest.approx(0.0, abs=1e-3)


def test_psi_ignores_bins_empty_on_both_sides():
    ref = np.array([50.0, 50.0, 0.0])
    assert drift_stats.psi(ref, np.array([50.0, 50.0, 0.0])) == pytest.approx(0.0, abs=1e-12)
    assert drift_stats.psi(ref, np.array([40.0, 40.0, 20.0])) > 0.5  # a new bin is drift


def test_psi_is_finite_on_empty_inputs():
    assert drift_stats.psi(np.array([1.0, 2.0]), np.zeros(2)) == 0.0


def test_js_distance_matches_scipy():
    p = np.array([5.0, 1.0, 0.0, 4.0])
    q = np.array([1.0, 1.0, 3.0, 5.0])
    assert drift_stats.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))


def test_ks_binned_equals_scipy_on_data_that_sits_on_the_bins():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 8, 3000)
    b = np.minimum(rng.integers(0, 9, 500), 7)
    ref, cur = np.bincount(a, minlength=8), np.bincount(b, minlength=8)
    result = drift_stats.ks_binned(ref, cur)
    expected = sps.ks_2samp(a, b, method="asymp")
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6)


def test_chi2_homogeneity_matches_chi2_contingency():
    ref = np.array([500.0, 300.0, 200.0])
    cur = np.array([40.0, 35.0, 25.0])
    result = drift_stats.chi2_homogeneity(ref, cur)
    stat, p, dof, _ = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert (result.statistic, result.p_value, result.dof) == (
        pytest.approx(stat),
        pytest.approx(p),
        dof,
    )
    assert result.effect == pytest.approx(np.sqrt(stat / 1100.0))


def test_chi2_homogeneity_merges_rare_categories():
    ref = np.array([600.0, 390.0, 30.0, 30.0])
    cur = np.array([60.0, 39.0, 0.0, 6.0])
    result = drift_stats.chi2_homogeneity(ref, cur)
    merged = np.array([[600.0, 390.0, 60.0], [60.0, 39.0, 6.0]])
    _, p, dof, _ = sps.chi2_contingency(merged, correction=False)
    assert result.dof == dof == 2
    assert result.p_value == pytest.approx(p)


def _holm_reference(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    out = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        out[i] = running
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_and_bh_match_references(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, 17) ** 2
    assert np.allclose(drift_stats.holm(p), _holm_reference(p))
    reference = sps.false_discovery_control(p, method="bh")
    assert np.allclose(drift_stats.benjamini_hochberg(p), reference)


def test_cusum_accumulates_a_sustained_shift_and_forgets_noise():
    noise = np.random.default_rng(3).normal(0, 1, 300)
    assert drift_stats.cusum(noise).max() < 5.0
    shifted = np.concatenate([noise[:50], noise[50:80] + 1.5])
    levels = drift_stats.cusum(shifted)
    assert levels[-1] > 5.0
    assert np.isnan(drift_stats.cusum(np.array([np.nan]))).sum() == 0


@pytest.mark.parametrize("n_cur", [200, 1000, 20_000])
def test_psi_threshold_false_alarm_rate_is_within_budget(n_cur):
    # 400 no-drift windows drawn from the reference itself, at three window sizes: the share
    # over the threshold must stay at the budget (binomial slack of ~2 sd), for every size.
    rng = np.random.default_rng(n_cur)
    fractions = np.array([0.1] * 10)
    n_ref = 40_000
    ref = rng.multinomial(n_ref, fractions)
    alpha = 0.05
    dof = drift_stats.psi_dof(ref)
    threshold = drift_stats.psi_threshold(n_ref, n_cur, dof, alpha, min_psi=0.0)
    windows = rng.multinomial(n_cur, ref / ref.sum(), size=400)
    fired = np.mean([drift_stats.psi(ref, w) > threshold for w in windows])
    assert fired <= alpha + 2 * np.sqrt(alpha * (1 - alpha) / 400)


def test_psi_threshold_detects_a_real_shift():
    ref = np.full(10, 4000.0)
    shifted = np.array([40, 40, 60, 80, 100, 100, 120, 140, 160, 160], dtype=float)
    assert drift_stats.psi(ref, shifted) > drift_stats.psi_threshold(40_000, 1000, 9, 0.01, 0.05)
