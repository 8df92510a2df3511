"""The statistics every layer shares: the standard normal quantile, the Wilson score interval,
and the paired comparisons of two models scored on the same rows (DeLong's test for the
difference of ROC AUCs, a paired bootstrap for the difference of mean per-row costs, and the
minimum detectable effect of a one-sided test).

Pure functions; the gate, the model report, the monitor and its Prometheus rules, and the
experiments' sequential test all take their quantiles and intervals from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from scipy.special import ndtri

_NORMAL = NormalDist()


def z(p: float) -> float:
    """The standard normal quantile Φ⁻¹(p) (scipy's ndtri: correctly rounded at 0.975)."""
    return float(ndtri(p))


@lru_cache(maxsize=64)
def two_sided_z(confidence: float) -> float:
    """The z of a two-sided interval at `confidence` (1.96 at 0.95); cached: the monitor asks
    for the same few once per window."""
    return z((1.0 + confidence) / 2.0)


def one_sided_z(confidence: float) -> float:
    """The z of a one-sided bound at `confidence` (1.645 at 0.95)."""
    return z(confidence)


def normal_sf(x: float) -> float:
    return 1.0 - _NORMAL.cdf(x)


def wilson(successes: float, trials: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there are no trials.

    Unlike the normal approximation it stays inside [0, 1] and is usable at 0 or n successes,
    which a rate such as the false negative rate on a few hundred positives needs. `successes`
    may be an expected (fractional) count, as CBPE's are.
    """
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} outside [0, {trials}]")
    z_ = two_sided_z(confidence)
    p = successes / trials
    denominator = 1.0 + z_ * z_ / trials
    centre = (p + z_ * z_ / (2.0 * trials)) / denominator
    half = z_ * math.sqrt(p * (1.0 - p) / trials + z_ * z_ / (4.0 * trials * trials)) / denominator
    # Exact at the ends (the closed form leaves 1e-17 of rounding there).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (as in the Mann-Whitney statistic)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Boundaries of runs of equal values.
    change = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(x)]])
    average = (starts + ends + 1) / 2.0  # mean of the 1-based ranks start+1 .. end
    ranks_sorted = np.repeat(average, ends - starts)
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = ranks_sorted
    return ranks


@dataclass(frozen=True)
class DeLong:
    """AUCs of models a and b on the same rows and the covariance of the two estimates."""

    auc_a: float
    auc_b: float
    var_a: float
    var_b: float
    cov_ab: float

    @property
    def delta(self) -> float:
        """auc_b - auc_a."""
        return self.auc_b - self.auc_a

    @property
    def se_delta(self) -> float:
        return float(np.sqrt(max(self.var_a + self.var_b - 2.0 * self.cov_ab, 0.0)))


def delong(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> DeLong:
    """DeLong, DeLong & Clarke-Pearson (1988), in the O(n log n) form of Sun & Xu (2014)."""
    labels = np.asarray(labels).astype(bool)
    m, n = int(labels.sum()), int((~labels).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's test needs both classes")
    structural = []
    aucs = []
    for scores in (np.asarray(scores_a, float), np.asarray(scores_b, float)):
        pos, neg = scores[labels], scores[~labels]
        tx, ty, tz = _midranks(pos), _midranks(neg), _midranks(np.concatenate([pos, neg]))
        auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v10 = (tz[:m] - tx) / n  # per positive: share of negatives ranked below it
        v01 = 1.0 - (tz[m:] - ty) / m  # per negative: share of positives ranked above it
        aucs.append(auc)
        structural.append((v10, v01))
    s10 = np.cov(np.vstack([structural[0][0], structural[1][0]])) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(np.vstack([structural[0][1], structural[1][1]])) if n > 1 else np.zeros((2, 2))
    cov = s10 / m + s01 / n
    return DeLong(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        var_a=float(cov[0, 0]),
        var_b=float(cov[1, 1]),
        cov_ab=float(cov[0, 1]),
    )


def paired_bootstrap_means(differences: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """Means of `reps` resamples (rows drawn with replacement, both models' values kept
    together: the difference per row is what is resampled) of the per-row differences."""
    differences = np.asarray(differences, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = len(differences)
    # Resamples drawn in blocks of at most ~2e7 indices (160 MB), whatever the test set's size.
    chunk = max(1, min(reps, 20_000_000 // max(n, 1)))
    out = np.empty(reps, dtype=np.float64)
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        out[start : start + size] = differences[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return out


def mde(se: float, alpha: float, power: float) -> float:
    """The smallest true difference a one-sided level-`alpha` test with this standard error
    detects with probability `power`: (z_{1-alpha} + z_{power}) * se."""
    return (z(1.0 - alpha) + z(power)) * se
