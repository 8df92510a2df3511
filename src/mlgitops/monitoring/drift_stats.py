"""The drift and decay statistics of monitoring, on bin counts: PSI and its no-drift threshold,
Jensen-Shannon, binned KS and χ² tests, multiple-testing adjustment and CUSUM. Small pure
functions, each checked against scipy; the Wilson interval and the normal quantile are the
shared ones in `mlgitops.stats`.

Everything works on counts over the profile's fixed bins, so the same numbers can be computed
from log files here and from Prometheus counters in the generated rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps

# Additive smoothing of bin counts before a log ratio: an empty bin must not make PSI infinite.
SMOOTHING = 0.5


def _active(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray:
    # A bin empty on both sides says nothing; dropping it keeps the null distribution of PSI
    # at (1/N_ref + 1/N_cur)·χ²(B−1) over the bins that can hold rows.
    return (ref_counts > 0) | (cur_counts > 0)


def smoothed_shares(counts: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.asarray(counts, dtype="float64")
    return (counts + SMOOTHING) / (counts.sum() + SMOOTHING * n_bins)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index, Σ (c−r)·ln(c/r), over smoothed shares of the active bins."""
    ref_counts = np.asarray(ref_counts, dtype="float64")
    cur_counts = np.asarray(cur_counts, dtype="float64")
    if cur_counts.sum() <= 0 or ref_counts.sum() <= 0:
        return 0.0
    n_bins = ref_counts.size
    ref = smoothed_shares(ref_counts, n_bins)
    cur = smoothed_shares(cur_counts, n_bins)
    terms = (cur - ref) * np.log(cur / ref)
    return float(terms[_active(ref_counts, cur_counts)].sum())


def psi_dof(ref_counts: np.ndarray) -> int:
    return max(int((np.asarray(ref_counts) > 0).sum()) - 1, 1)


@lru_cache(maxsize=1024)
def chi2_quantile(alpha: float, dof: int) -> float:
    """The (1−alpha) quantile of χ²(dof) (cached: windows ask for the same few)."""
    return float(sps.chi2.isf(alpha, dof))


def psi_null_quantile(n_ref: float, n_cur: float, dof: int, alpha: float) -> float:
    """The (1−alpha) quantile of PSI when nothing changed: (1/N_ref + 1/N_cur)·χ²_{1−α}(dof)."""
    if n_cur <= 0 or n_ref <= 0:
        return math.inf
    return (1.0 / n_ref + 1.0 / n_cur) * chi2_quantile(alpha, dof)


def psi_threshold(n_ref: float, n_cur: float, dof: int, alpha: float, min_psi: float) -> float:
    """Alert above this: the no-drift quantile at the false-alarm budget, never below min_psi.

    A fixed 0.1/0.25 rule fires on most small windows and never on large ones; this one keeps
    the false-alarm rate at alpha for every window size and ignores changes too small to matter.
    """
    return max(min_psi, psi_null_quantile(n_ref, n_cur, dof, alpha))


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between the two bin distributions."""
    p = np.asarray(ref_counts, dtype="float64")
    q = np.asarray(cur_counts, dtype="float64")
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / m[mask])).sum())

    return float(math.sqrt(max(0.0, (kl(p) + kl(q)) / 2.0)))


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    effect: float  # KS: D itself; chi²: Cramér's V
    dof: int = 0


def ks_binned(ref_counts: np.ndarray, cur_counts: np.ndarray) -> TestResult:
    """Two-sample Kolmogorov–Smirnov on ordered bins (asymptotic p-value).

    D over bin boundaries is the KS statistic of the data rounded to the bins, a lower bound of
    the raw D, so the test is conservative and needs no raw reference data.
    """
    ref = np.asarray(ref_counts, dtype="float64")
    cur = np.asarray(cur_counts, dtype="float64")
    n, m = ref.sum(), cur.sum()
    if n <= 0 or m <= 0:
        return TestResult(0.0, 1.0, 0.0)
    d = float(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m).max())
    en = n * m / (n + m)
    # scipy.stats.ks_2samp(method="asymp") uses the one-sample law at n = round(en); its exact
    # form costs milliseconds per call at large n, where the limit law agrees to 1e-3.
    if en > 10_000:
        return TestResult(d, float(sps.kstwobign.sf(d * math.sqrt(en))), d)
    return TestResult(d, float(sps.kstwo.sf(d, max(1, round(en)))), d)


def chi2_homogeneity(
    ref_counts: np.ndarray, cur_counts: np.ndarray, min_expected: float = 5.0
) -> TestResult:
    """χ² test of homogeneity (reference vs current rows of a 2×K table).

    Categories whose expected count is below `min_expected` on either side (Cochran's rule) are
    merged into one; if the merged cell is still too small it joins the smallest other one.
    """
    ref = np.asarray(ref_counts, dtype="float64")
    cur = np.asarray(cur_counts, dtype="float64")
    n, m = ref.sum(), cur.sum()
    if n <= 0 or m <= 0:
        return TestResult(0.0, 1.0, 0.0)
    total = ref + cur
    keep = total > 0
    ref, cur, total = ref[keep], cur[keep], total[keep]
    small = np.minimum(total * n, total * m) / (n + m) < min_expected
    if small.any():
        other_ref, other_cur = ref[small].sum(), cur[small].sum()
        ref, cur = ref[~small], cur[~small]
        other = other_ref + other_cur
        if ref.size and min(other * n, other * m) / (n + m) < min_expected:
            smallest = int(np.argmin(ref + cur))  # still too small: fold into the smallest cell
            ref[smallest] += other_ref
            cur[smallest] += other_cur
        else:
            ref, cur = np.append(ref, other_ref), np.append(cur, other_cur)
    if ref.size < 2:
        return TestResult(0.0, 1.0, 0.0)
    table = np.vstack([ref, cur])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = ref.size - 1
    cramers_v = math.sqrt(statistic / table.sum())  # min(rows, cols) − 1 = 1 for two rows
    return TestResult(statistic, float(sps.chi2.sf(statistic, dof)), cramers_v, dof)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype="float64")
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (controls the false discovery rate)."""
    p = np.asarray(p_values, dtype="float64")
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    return holm(p_values) if method == "holm" else benjamini_hochberg(p_values)


def cusum(z_scores: np.ndarray, k: float = 0.5) -> np.ndarray:
    """Upper one-sided CUSUM S_t = max(0, S_{t−1} + z_t − k) of standardised window statistics.

    Windows without a value (NaN) leave S unchanged. With k = 0.5 and alarm level h = 5 the
    in-control run length is about 930 windows; a sustained shift of one standard error alarms
    after about 10.
    """
    values = np.asarray(z_scores, dtype="float64")
    out = np.zeros(values.size)
    level = 0.0
    for i, z in enumerate(values):
        if not math.isnan(z):
            level = max(0.0, level + z - k)
        out[i] = level
    return out
