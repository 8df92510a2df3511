"""Performance figures of `mlgitops monitor`, checked against scipy and sklearn and by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import performance
from mlgitops.monitoring.reference import Costs, ScoreReference
from mlgitops.monitoring.tally import segment_cells
from mlgitops.profile import NumericProfile

COSTS = Costs(false_positive=5.0, false_negative=100.0, currency="EUR")
REALIZED = {"tp": 80, "fp": 150, "tn": 9_700, "fn": 70}


def reference(segments: dict | None = None) -> ScoreReference:
    score = NumericProfile(
        count=10_000, missing_rate=0.0, min=0.0, max=1.0, mean=0.1, std=0.2,
        bin_edges=[0.5], bin_fractions=[0.9, 0.1],
    )  # fmt: skip
    return ScoreReference(
        n_rows=10_000, n_positive=150, threshold=0.5, score=score, positive_rate=0.023,
        expected={"tp": 0.008, "fp": 0.015, "tn": 0.97, "fn": 0.007},
        expected_cost_per_1000=775.0, expected_cost_std=8.0, estimated_fpr=0.015,
        estimated_fnr=0.45, realized=REALIZED,
        released={"fpr": 150 / 9_850, "fnr": 70 / 150, "expected_cost_per_1000": 775.0},
        costs=COSTS, segments=segments or {},
    )  # fmt: skip


def test_confusion_per_window_matches_sklearn_and_skips_unlabelled_rows() -> None:
    rng = np.random.default_rng(11)
    window = rng.integers(0, 3, 2_000)
    flagged = rng.random(2_000) < 0.3
    truth = np.where(rng.random(2_000) < 0.2, np.nan, (rng.random(2_000) < 0.1).astype(float))
    counts = performance.confusion(flagged, truth, window, 3)
    for w in range(3):
        keep = (window == w) & ~np.isnan(truth)
        tn, fp, fn, tp = confusion_matrix(truth[keep], flagged[keep], labels=[0, 1]).ravel()
        assert [counts[k][w] for k in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]


def test_realized_rates_carry_scipy_wilson_intervals_and_the_cost() -> None:
    c = {"tp": 30.0, "fp": 12.0, "tn": 900.0, "fn": 8.0}
    figures = performance.realized_figures(c, reference(), 0.99)
    assert figures["labelled"] == 950
    for name, k, m in (("precision", 30, 42), ("recall", 30, 38), ("fpr", 12, 912), ("fnr", 8, 38)):
        interval = binomtest(k, m).proportion_ci(confidence_level=0.99, method="wilson")
        assert figures[name] == pytest.approx(k / m)
        assert figures[f"{name}_low"] == pytest.approx(interval.low, rel=1e-9)
        assert figures[f"{name}_high"] == pytest.approx(interval.high, rel=1e-9)
    assert figures["cost_per_1000"] == pytest.approx(1000 * (5 * 12 + 100 * 8) / 950)


def test_rates_without_a_denominator_have_no_value_and_no_interval() -> None:
    figures = performance.realized_figures(
        dict.fromkeys(("tp", "fp", "tn", "fn"), 0.0), reference(), 0.99
    )
    assert math.isnan(figures["fpr"])
    assert figures["fpr_low"] is None
    assert figures["fpr_high"] is None
    assert math.isnan(figures["cost_per_1000"])


def test_realized_row_cost_is_the_mean_and_sd_of_the_test_rows_costs() -> None:
    costs = np.repeat([0.0, 5.0, 0.0, 100.0], [REALIZED[k] for k in ("tp", "fp", "tn", "fn")])
    mean, sd = performance.realized_row_cost(reference())
    assert mean == pytest.approx(costs.mean())
    assert sd == pytest.approx(costs.std())


def test_estimated_cost_z_counts_the_sampling_error_of_both_samples() -> None:
    expected = {"tp": 4.0, "fp": 9.0, "tn": 480.0, "fn": 7.0}
    figures = performance.estimated_figures(
        expected, cost_sum=500.0, n=500.0, reference=reference()
    )
    assert figures["cost_per_1000"] == 1000.0
    se = 1000.0 * 8.0 * math.sqrt(1 / 500 + 1 / 10_000)
    assert figures["cost_z"] == pytest.approx((1000.0 - 775.0) / se)
    assert figures["fpr"] == pytest.approx(9 / 489)
    assert figures["expected_fn"] == 7.0


def test_label_delays_only_of_labelled_rows_of_the_window() -> None:
    delays = np.array([1.0, 2.0, 3.0, np.nan, 50.0])
    mask = np.array([True, True, True, True, False])
    figures = performance.label_delays(delays, mask)
    assert figures["delay_hours_median"] == 2.0
    assert figures["delay_hours_p90"] == pytest.approx(np.quantile([1.0, 2.0, 3.0], 0.9))
    assert performance.label_delays(delays, np.zeros(5, dtype=bool))["delay_hours_median"] is None


def test_segment_tables_match_a_groupby_and_keep_the_most_frequent_values() -> None:
    rng = np.random.default_rng(2)
    n = 3_000
    frame = pd.DataFrame(
        {"channel": rng.choice(["web", "pos", "app", None], n, p=[0.5, 0.3, 0.15, 0.05])}
    )
    window = rng.integers(0, 2, n)
    flagged = rng.random(n) < 0.2
    truth = (rng.random(n) < 0.1).astype(float)
    cost = rng.random(n)
    config = MonitoringConfig(segments=["channel", "absent"], max_segment_values=3)
    cells, costs = segment_cells(frame, config, window, flagged, truth, cost)
    [table] = performance.segment_tables(cells, costs, config, np.arange(2))
    assert table.values == ["web", "pos", "app"]  # "missing" is the 4th most frequent: left out
    grouped = pd.DataFrame({"w": window, "v": frame["channel"], "cost": cost, "f": flagged})
    for j, value in enumerate(table.values):
        for w in range(2):
            part = grouped[(grouped["w"] == w) & (grouped["v"] == value)]
            assert table.sums["rows"][w, j] == len(part)
            assert table.sums["flagged"][w, j] == part["f"].sum()
            assert table.sums["cost"][w, j] == pytest.approx(part["cost"].sum())


def test_a_segment_worse_than_its_released_figures_fires_once_it_has_labels() -> None:
    frame = pd.DataFrame({"channel": ["web"] * 400 + ["pos"] * 400})
    flagged = np.r_[np.ones(200, bool), np.zeros(200, bool), np.zeros(400, bool)]
    truth = np.zeros(800)  # every web flag a false positive: FPR 50% against 2% released
    released = {"channel": {"web": {"tp": 10, "fp": 20, "tn": 980, "fn": 5}}}
    config = MonitoringConfig(segments=["channel"])
    cells, costs = segment_cells(
        frame, config, np.zeros(800, np.int64), flagged, truth, np.zeros(800)
    )
    tables = performance.segment_tables(cells, costs, config, np.arange(1))
    figures, alerts = performance.segments("w", 0, tables, reference(released), config)
    assert figures["channel=web"]["fpr"] == 0.5
    assert "released_fpr_high" in figures["channel=web"]
    assert "released_fpr_high" not in figures["channel=pos"]  # no released figures for pos
    assert [(a.kind, a.subject) for a in alerts] == [("segment_fpr_degraded", "channel=web")]
