"""The confusion counts' rates and cost: against scikit-learn, and the same numbers (to the bit)
as the per-site formulas they replace."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from mlgitops.confusion import Confusion, error_cost


def _data(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.08).astype(int)
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0.0, 1.0)
    return labels, scores


@pytest.mark.parametrize("threshold", [0.0, 0.35, 0.5, 0.72, 1.01])
def test_counts_and_rates_match_scikit_learn(threshold: float) -> None:
    labels, scores = _data(1)
    c = Confusion.at(labels, scores, threshold)
    flagged = (scores >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, flagged, labels=[0, 1]).ravel()
    assert (c.tp, c.fp, c.tn, c.fn) == (tp, fp, tn, fn)
    assert (c.n, c.positives, c.negatives, c.flagged) == (2000, tp + fn, fp + tn, tp + fp)
    assert c.precision == precision_score(labels, flagged, zero_division=0.0)
    assert c.recall == recall_score(labels, flagged, zero_division=0.0)
    assert c.fpr == (fp / (fp + tn))
    assert c.fnr == (fn / (fn + tp))
    assert c.rates() == {"precision": c.precision, "recall": c.recall, "fpr": c.fpr, "fnr": c.fnr}


def test_rates_on_an_empty_base_read_zero_as_in_the_metrics_files() -> None:
    nothing_flagged = Confusion(tp=0, fp=0, tn=90, fn=10)
    assert nothing_flagged.precision == 0.0
    assert nothing_flagged.recall == 0.0
    no_positives = Confusion(tp=0, fp=3, tn=97, fn=0)
    assert no_positives.recall == 0.0
    assert no_positives.fnr == 0.0
    assert no_positives.fpr == 0.03
    assert no_positives.rate_counts()["fnr"] == (0, 0)


def test_rate_counts_name_each_rates_count_and_base() -> None:
    c = Confusion(tp=170, fp=1158, tn=8609, fn=63)
    assert c.rate_counts() == {
        "precision": (170, 1328),
        "recall": (170, 233),
        "fpr": (1158, 9767),
        "fnr": (63, 233),
    }


def test_cost_is_the_business_rule() -> None:
    c = Confusion(tp=170, fp=1158, tn=8609, fn=63)
    assert c.cost(5.0, 100.0) == 5.0 * 1158 + 100.0 * 63 == 12090.0
    assert c.cost(0.5, 0.25) == error_cost(1158, 63, 0.5, 0.25)


@pytest.mark.parametrize("seed", range(3))
def test_error_cost_per_row_and_per_threshold_is_the_old_formula_bit_for_bit(seed: int) -> None:
    labels, scores = _data(seed)
    flagged = scores >= 0.5
    fp_cost, fn_cost = 4.7, 123.3
    # Per row, as the report's slices wrote it with np.where.
    old_rows = np.where(
        flagged & (labels == 0), fp_cost, np.where(~flagged & (labels == 1), fn_cost, 0.0)
    )
    new_rows = error_cost(flagged & (labels == 0), ~flagged & (labels == 1), fp_cost, fn_cost)
    assert new_rows.dtype == np.float64
    assert np.array_equal(new_rows, old_rows)
    # Per row of expected outcomes (CBPE) and per candidate threshold (arrays of counts).
    p = np.random.default_rng(seed).random((2, 50))
    assert np.array_equal(error_cost(p[0], p[1], fp_cost, fn_cost), fp_cost * p[0] + fn_cost * p[1])
    # The mean of the per-row costs is the counts' cost per row.
    c = Confusion.of(flagged, labels)
    assert new_rows.mean() == pytest.approx(c.cost(fp_cost, fn_cost) / c.n, rel=1e-12)
