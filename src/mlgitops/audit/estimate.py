"""Population estimates from a labelled stratified sample, and agreement statistics.

Every metric is a ratio of population totals R = sum(a) / sum(b) (precision: a = y * f,
b = f; FPR: a = (1 - y) f, b = 1 - y; FNR: a = y (1 - f), b = y; fraud rate: a = y, b = 1,
with y the audited label and f the model's decision). The point estimate is the Hajek ratio
of Horvitz-Thompson totals, each labelled row weighted 1 / pi with pi = m_h / N_h, m_h the
labelled rows of its stratum (rows sampled but not labelled are treated as missing at random
within their stratum). Its variance is the linearisation (Taylor) variance for stratified
sampling without replacement:

    V = sum_h N_h^2 (1 - m_h / N_h) s_h^2(z) / m_h,   z_i = (a_i - R b_i) / B

and the interval is Korn and Graubard's (1998): the Clopper-Pearson interval at the effective
sample size n_eff = R (1 - R) / V, or at the number of labelled rows in the denominator when
V is 0 (no event in the sample, or a census). It stays inside [0, 1], keeps a width when the
sample holds no event, and its coverage is checked by simulation in the tests (a normal
interval on R covers too rarely with the dozen frauds a sample of a few hundred holds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mlgitops.audit.models import Agreement, Estimate

METRICS = ("precision", "fpr", "fnr", "fraud_rate")


def clopper_pearson(p: float, n: float, confidence: float) -> tuple[float, float]:
    """The Clopper-Pearson interval of a proportion p observed on n trials, n possibly
    fractional (an effective sample size): the beta quantiles at x = p n successes."""
    from scipy.stats import beta

    alpha, x = 1 - confidence, p * n
    low = 0.0 if x <= 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
    high = 1.0 if x >= n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
    return low, high


def _parts(metric: str, y: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if metric == "precision":
        return y * f, f
    if metric == "fpr":
        return (1 - y) * f, 1 - y
    if metric == "fnr":
        return y * (1 - f), y
    if metric == "fraud_rate":
        return y, np.ones_like(y)
    raise ValueError(metric)


def ratio(
    metric: str,
    strata: np.ndarray,
    y: np.ndarray,
    flagged: np.ndarray,
    sizes: np.ndarray,
    confidence: float,
) -> Estimate:
    """The estimate of `metric` from labelled rows: their stratum numbers, audited labels and
    model decisions; `sizes` are the strata's population counts N_h."""
    y, f = np.asarray(y, dtype=float), np.asarray(flagged, dtype=float)
    strata = np.asarray(strata, dtype=int)
    labelled = np.bincount(strata, minlength=len(sizes)).astype(float)
    weights = np.divide(sizes[strata], labelled[strata])
    a, b = _parts(metric, y, f)
    total_b = float(np.sum(weights * b))
    in_domain = int(np.sum(b > 0))
    if total_b <= 0:
        return Estimate(
            metric=metric, estimate=None, low=None, high=None, labelled=0, standard_error=None
        )
    r = float(np.sum(weights * a)) / total_b
    z_values = (a - r * b) / total_b
    variance = 0.0
    for h in np.flatnonzero(labelled > 1):
        values = z_values[strata == h]
        m, n_h = labelled[h], float(sizes[h])
        variance += n_h * n_h * (1 - m / n_h) * float(np.var(values, ddof=1)) / m
    n_eff = r * (1 - r) / variance if variance > 0 and 0 < r < 1 else float(in_domain)
    low, high = clopper_pearson(r, n_eff, confidence)
    return Estimate(
        metric=metric,
        estimate=r,
        low=low,
        high=high,
        labelled=in_domain,
        standard_error=math.sqrt(variance),
    )


def estimates(
    strata: np.ndarray,
    y: np.ndarray,
    flagged: np.ndarray,
    sizes: np.ndarray,
    confidence: float,
) -> list[Estimate]:
    return [ratio(m, strata, y, flagged, sizes, confidence) for m in METRICS]


def cohen_kappa(first: Sequence[int], second: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters' binary labels; None when chance agreement is 1 (both
    raters gave one and the same label throughout: kappa is undefined)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if len(a) == 0:
        return None
    observed = float(np.mean(a == b))
    pa, pb = float(np.mean(a)), float(np.mean(b))
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def agreement(first: Sequence[int], second: Sequence[int]) -> Agreement:
    if len(first) == 0:
        return Agreement(pairs=0, raw=None, kappa=None)
    raw = float(np.mean(np.asarray(first) == np.asarray(second)))
    return Agreement(pairs=len(first), raw=raw, kappa=cohen_kappa(first, second))


def surprise(score: float, label: int) -> float:
    """-log2 of the probability the model gave the label the annotators chose (bits)."""
    p = min(max(score, 1e-12), 1 - 1e-12)
    return -math.log2(p if label else 1 - p)
