"""The shortest prefix of a tree ensemble whose test expected cost is within epsilon of the full.

Boosting prefixes are the models early stopping would have given; forest trees are exchangeable,
so a prefix is as good as a random subset (a greedy search could do better; not done).
"""

from __future__ import annotations

import numpy as np

from mlgitops.config import ThresholdConfig
from mlgitops.confusion import error_cost
from mlgitops.export.ir import Trees, expit
from mlgitops.export.ledger import decisions


def prefix_scores(trees: Trees, leaves: np.ndarray) -> np.ndarray:
    """(rows, k) scores of the first 1..T trees, from the (rows, T) leaf matrix."""
    running = np.cumsum(leaves, axis=1)
    if trees.aggregate == "mean":
        return running / np.arange(1, leaves.shape[1] + 1)
    return expit(trees.base + running)


def shortest_prefix(
    trees: Trees,
    leaves: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    costs: ThresholdConfig,
    epsilon: float,
) -> tuple[int, np.ndarray]:
    """(trees kept, their scores); cost is per 1,000 rows at the operating threshold."""
    scores = prefix_scores(trees, leaves)
    flagged = decisions(scores, threshold)
    positive = (labels == 1)[:, None]
    fp = np.sum(flagged & ~positive, axis=0)
    fn = np.sum(~flagged & positive, axis=0)
    cost = (
        1000.0
        * error_cost(fp, fn, costs.false_positive_cost, costs.false_negative_cost)
        / len(labels)
    )
    kept = int(np.flatnonzero(cost <= cost[-1] + epsilon)[0]) + 1
    return kept, scores[:, kept - 1]
