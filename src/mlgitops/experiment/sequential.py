"""Always-valid statistics for a running experiment: the sample-ratio-mismatch check, the mixture
sequential probability ratio test (mSPRT) with a normal mixing prior, its confidence sequence and
the sample size it needs.

mSPRT (Johari, Pekelis, Walsh 2017, "Always valid inference"): with an estimate D of the
difference and its variance V at a look, and the true difference mixed over N(0, tau^2), the
likelihood ratio against "no difference" is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 D^2 / (2 V (V + tau^2)))

(for n per arm and V = sigma^2 / n this is their formula). Under no difference, Lambda is a
nonnegative martingale with mean 1, so by Ville's inequality it exceeds 1/alpha at ANY look with
probability at most alpha: p_n = min(p_{n-1}, 1/Lambda_n) is a p-value one may watch after every
observation. A fixed-horizon z-test watched the same way is not (about 20% false positives at 10
looks for alpha 0.05). Variances are plug-in estimates, so the guarantee is asymptotic: nothing is
tested before a minimum number of rows per arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mlgitops.stats import one_sided_z


@dataclass(frozen=True)
class Srm:
    counts: tuple[int, int]
    expected: tuple[float, float]
    chi2: float
    p_value: float


def srm_test(champion: int, challenger: int, share: float) -> Srm:
    """Chi-square goodness of fit of the two arm counts to the declared challenger share."""
    total = champion + challenger
    expected = (total * (1.0 - share), total * share)
    if total == 0:
        return Srm((champion, challenger), expected, 0.0, 1.0)
    observed = (champion, challenger)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return Srm(observed, expected, float(chi2), float(stats.chi2.sf(chi2, df=1)))


def log_likelihood_ratio(delta: np.ndarray, variance: np.ndarray, tau2: float) -> np.ndarray:
    """log Lambda of the normal-mixture SPRT at each look; 0 (no evidence) where V is not > 0."""
    delta = np.asarray(delta, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    out = np.zeros_like(delta)
    ok = variance > 0
    v = variance[ok]
    out[ok] = 0.5 * np.log(v / (v + tau2)) + tau2 * delta[ok] ** 2 / (2.0 * v * (v + tau2))
    return out


def always_valid_p(delta: np.ndarray, variance: np.ndarray, tau2: float) -> np.ndarray:
    """The always-valid p-value after each look: the running minimum of min(1, 1/Lambda)."""
    log_lr = log_likelihood_ratio(delta, variance, tau2)
    p = np.exp(-np.clip(log_lr, 0.0, None))
    return np.minimum.accumulate(p) if len(p) else p


def half_width(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the (1 - alpha) confidence sequence around the estimate: the differences
    whose mixture likelihood ratio stays below 1/alpha."""
    if variance <= 0:
        return 0.0
    ratio = (variance + tau2) / variance
    return math.sqrt(
        variance * (variance + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log(ratio))
    )


def rows_needed(
    unit_variance: float, min_effect: float, tau2: float, alpha: float, power: float
) -> float:
    """Rows (in total, with `unit_variance` = n * V of one row's worth) after which a true
    difference of `min_effect` would be declared with probability about `power`: the confidence
    sequence's half-width plus z_power standard errors fits within the effect."""
    if unit_variance <= 0:
        return 0.0
    z = one_sided_z(power)

    def enough(n: float) -> bool:
        variance = unit_variance / n
        return half_width(variance, tau2, alpha) + z * math.sqrt(variance) <= min_effect

    low, high = 1.0, 2.0
    while not enough(high):
        low, high = high, high * 2.0
        if high > 1e15:
            return math.inf
    for _ in range(60):  # bisection to well under one row
        middle = (low + high) / 2.0
        low, high = (low, middle) if enough(middle) else (middle, high)
        if high - low < 0.5:
            break
    return math.ceil(high)


@dataclass(frozen=True)
class Looks:
    """The estimate (challenger - champion) and its variance after each observation, in time
    order; `tested` marks the looks with enough rows in both arms to be tested."""

    delta: np.ndarray
    variance: np.ndarray
    tested: np.ndarray
    n_champion: np.ndarray
    n_challenger: np.ndarray


def _running_moments(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    x = np.where(mask, values, 0.0)
    n = np.cumsum(mask, dtype=np.float64)
    total = np.cumsum(x)
    squares = np.cumsum(x * x)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        var = (squares - n * mean * mean) / (n - 1.0)
    return n, mean, np.clip(np.nan_to_num(var), 0.0, None)


def two_sample_looks(values: np.ndarray, challenger: np.ndarray, min_rows: int) -> Looks:
    """Independent arms: one value per row, `challenger` True for the challenger's rows; rows in
    the order they became known. V = s_A^2 / n_A + s_B^2 / n_B."""
    values = np.asarray(values, dtype=np.float64)
    challenger = np.asarray(challenger, dtype=bool)
    n_a, mean_a, var_a = _running_moments(values, ~challenger)
    n_b, mean_b, var_b = _running_moments(values, challenger)
    tested = (n_a >= min_rows) & (n_b >= min_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(tested, var_a / n_a + var_b / n_b, 0.0)
        delta = np.where(tested, mean_b - mean_a, 0.0)
    return Looks(delta, variance, tested, n_a, n_b)


def paired_looks(differences: np.ndarray, min_rows: int) -> Looks:
    """Paired rows (shadow mode: both models scored every row): one difference per row,
    challenger - champion. V = s_d^2 / n."""
    differences = np.asarray(differences, dtype=np.float64)
    n, mean, var = _running_moments(differences, np.ones(len(differences), dtype=bool))
    tested = n >= min_rows
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(tested, var / n, 0.0)
    return Looks(np.where(tested, mean, 0.0), variance, tested, n, n)


@dataclass(frozen=True)
class Decision:
    """The sequential test over all looks so far."""

    tested: bool
    p_value: float  # always valid
    stopped_at: int | None  # index of the first look with p <= alpha
    delta: float  # at the last look
    variance: float
    ci_low: float  # the confidence sequence at the last look
    ci_high: float
    delta_at_stop: float | None
    naive_p_value: float  # the fixed-horizon z-test's, at the last look (not valid when peeking)


def decide(looks: Looks, tau2: float, alpha: float) -> Decision:
    tested = bool(looks.tested.any())
    if not tested:
        return Decision(False, 1.0, None, 0.0, 0.0, -math.inf, math.inf, None, 1.0)
    p = always_valid_p(looks.delta, looks.variance, tau2)
    hits = np.flatnonzero(p <= alpha)
    stopped = int(hits[0]) if len(hits) else None
    delta, variance = float(looks.delta[-1]), float(looks.variance[-1])
    width = half_width(variance, tau2, alpha)
    naive = 2.0 * stats.norm.sf(abs(delta) / math.sqrt(variance)) if variance > 0 else 1.0
    return Decision(
        tested=True,
        p_value=float(p[-1]),
        stopped_at=stopped,
        delta=delta,
        variance=variance,
        ci_low=delta - width,
        ci_high=delta + width,
        delta_at_stop=None if stopped is None else float(looks.delta[stopped]),
        naive_p_value=float(naive),
    )
