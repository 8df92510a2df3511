"""The sampling design: score strata, the allocation of the sample to them, and the draw.

Strata are score bands cut at `audit.score_bands` and at the release threshold, so a stratum
holds only flagged or only let-through predictions. The sample of size n is the sum of three
allocations, each a share of n:

- the uniform floor (`uniform_floor_share`): in proportion to the strata's sizes, as a uniform
  sample would be, so every prediction has an inclusion probability above zero;
- the let-through share (`let_through_share`): in proportion to size among the strata below
  the threshold, where the missed frauds are;
- the rest: Neyman allocation for the number of frauds, N_h * sqrt(s_h (1 - s_h)) with s_h
  the stratum's mean model score as the prior guess of its fraud rate, the two strata either
  side of the threshold weighted by `near_threshold_weight`.

Every non-empty stratum gets at least two rows (its variance needs two), none more than it
holds. Within a stratum the rows are a simple random sample without replacement, so each
row's inclusion probability is exactly pi = n_h / N_h, and they sum to n.
"""

from __future__ import annotations

import numpy as np

from mlgitops.audit.models import Stratum
from mlgitops.config import AuditConfig
from mlgitops.errors import AuditInputError

MIN_PER_STRATUM = 2


def stratum_edges(bands: tuple[float, ...], threshold: float) -> list[float]:
    """Increasing edges from 0 to 1 with the threshold among them."""
    return sorted({0.0, 1.0, float(threshold), *(float(b) for b in bands)})


def assign(scores: np.ndarray, edges: list[float]) -> np.ndarray:
    """The stratum index of each score: [edges[i], edges[i+1]), the last one closed at 1."""
    index = np.searchsorted(np.asarray(edges), scores, side="right") - 1
    return np.clip(index, 0, len(edges) - 2)


def _name(low: float, high: float, last: bool) -> str:
    return f"[{low:.4g}, {high:.4g}{']' if last else ')'}"


def allocation_weights(
    sizes: np.ndarray,
    mean_scores: np.ndarray,
    flagged: np.ndarray,
    near: np.ndarray,
    n: int,
    config: AuditConfig,
) -> np.ndarray:
    """The continuous allocation (sums to n) before the per-stratum bounds."""
    total = sizes.sum()
    below = sizes * ~flagged
    floor = config.uniform_floor_share * n * sizes / total
    let_through = config.let_through_share * n * below / below.sum() if below.sum() else 0.0
    spread = np.sqrt(np.clip(mean_scores * (1 - mean_scores), 0.0, None))
    neyman = sizes * spread * np.where(near, config.near_threshold_weight, 1.0)
    rest = n - floor.sum() - (np.sum(let_through) if below.sum() else 0.0)
    if neyman.sum() <= 0:  # every score 0 or 1: nothing to guide the rest, spread it evenly
        neyman = sizes.astype(float)
    return floor + let_through + rest * neyman / neyman.sum()


def bounded_integers(target: np.ndarray, low: np.ndarray, high: np.ndarray, n: int) -> np.ndarray:
    """Integers within [low, high] summing to n (sum(low) <= n <= sum(high)), proportional to
    `target` where the bounds allow: clip(lam * target, low, high) with lam found by bisection
    (the sum grows with lam), then rounded by largest remainders."""
    # A zero target still has to fill its stratum when nothing else can hold the rows.
    weights = np.maximum(np.asarray(target, dtype=float), 1e-12)

    def filled(lam: float) -> np.ndarray:
        return np.clip(lam * weights, low, high)

    lo, hi = 0.0, 1.0
    while filled(hi).sum() < n and hi < 1e300:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if filled(mid).sum() < n else (lo, mid)
    values = filled(hi)
    counts = np.clip(np.floor(values), low, high).astype(int)
    remainders = values - counts
    # Ties go to the lower stratum: stable sorts on the remainders.
    for i in np.argsort(-remainders, kind="stable"):
        if counts.sum() >= n:
            break
        if counts[i] < high[i]:
            counts[i] += 1
    for i in np.argsort(remainders, kind="stable"):
        if counts.sum() <= n:
            break
        if counts[i] > low[i]:
            counts[i] -= 1
    return counts


def plan(scores: np.ndarray, threshold: float, n: int, config: AuditConfig) -> list[Stratum]:
    """The strata of `scores` with their sizes and sample counts (no row drawn yet)."""
    edges = stratum_edges(config.score_bands, threshold)
    index = assign(scores, edges)
    count = len(edges) - 1
    sizes = np.bincount(index, minlength=count)
    sums = np.bincount(index, weights=scores, minlength=count)
    means = np.divide(sums, sizes, out=np.zeros(count), where=sizes > 0)
    flagged = np.array([edges[i] >= threshold for i in range(count)])
    at = edges.index(float(threshold))
    near = np.zeros(count, dtype=bool)
    near[[i for i in (at - 1, at) if 0 <= i < count]] = True
    if n >= sizes.sum():
        counts = sizes.copy()  # a census
    else:
        low = np.minimum(sizes, MIN_PER_STRATUM)
        if low.sum() > n:
            raise AuditInputError(
                f"sample size {n}: too small for {int((sizes > 0).sum())} score strata "
                f"(at least {MIN_PER_STRATUM} rows each: use --size {int(low.sum())} or more, "
                "or fewer audit.score_bands)"
            )
        target = allocation_weights(sizes, means, flagged, near, n, config)
        counts = bounded_integers(target, low.astype(float), sizes.astype(float), n)
    return [
        Stratum(
            name=_name(edges[i], edges[i + 1], i == count - 1),
            low=edges[i],
            high=edges[i + 1],
            flagged=bool(flagged[i]),
            near_threshold=bool(near[i]),
            population=int(sizes[i]),
            sampled=int(counts[i]),
            mean_score=float(means[i]),
        )
        for i in range(count)
    ]


def draw(index: np.ndarray, strata: list[Stratum], seed: int) -> np.ndarray:
    """Positions (into `index`, the rows' stratum numbers) of the sample, sorted: per stratum
    a simple random sample without replacement of its planned size. The rows must come in a
    canonical order (the caller sorts them by id) for the draw to depend on the seed alone."""
    rng = np.random.default_rng(seed)
    picked = []
    for number, stratum in enumerate(strata):
        members = np.flatnonzero(index == number)
        if stratum.sampled:
            picked.append(rng.choice(members, size=stratum.sampled, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int)
