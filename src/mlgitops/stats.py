"""Paired comparisons of two models scored on the same rows: DeLong's test for the difference of
ROC AUCs, a paired bootstrap for the difference of mean per-row costs, and the minimum
detectable effect of a one-sided test.

Pure functions of arrays; the gate stage and `mlgitops report pr` both call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def z(p: float) -> float:
    """The standard normal quantile."""
    return _NORMAL.inv_cdf(p)


def normal_sf(x: float) -> float:
    return 1.0 - _NORMAL.cdf(x)


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
