"""Interval arithmetic for the report: Wilson score intervals and per-day counts built on them."""

from __future__ import annotations

import math

# The 97.5th percentile of the standard normal: two-sided 95 % intervals.
Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (closed form; (0, 1) with no trials).

    Unlike the normal approximation it stays inside [0, 1] and is usable at 0 or n successes,
    which a rate such as the false negative rate on a few hundred positives needs.
    """
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} outside [0, {trials}]")
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # Exact at the ends (the closed form leaves 1e-17 of rounding there).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high
