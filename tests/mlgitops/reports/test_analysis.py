from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from mlgitops.config import ReportConfig, ReportWords, ThresholdConfig
from mlgitops.modeling.evaluation import choose_threshold
from mlgitops.reports import analysis


def _data(seed: int, n: int = 2000, rate: float = 0.05):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < rate).astype(int)
    scores = np.clip(rng.beta(1, 12, n) + labels * rng.random(n) * 0.4, 0, 1).round(4)
    return labels, scores


@pytest.mark.parametrize("seed", range(3))
def test_rate_curves_match_brute_force(seed: int) -> None:
    labels, scores = _data(seed, n=300)
    thresholds = analysis.candidate_thresholds(scores)
    fpr, tpr = analysis.rate_curves(labels, scores, thresholds)
    for i, t in enumerate(thresholds):
        c = analysis.Counts.at(labels, scores, t)
        assert fpr[i] == pytest.approx(c.fp / (c.fp + c.tn))
        assert tpr[i] == pytest.approx(c.tp / (c.tp + c.fn))


@pytest.mark.parametrize("seed", range(3))
def test_points_agree_with_the_evaluate_stage_at_the_validation_rate(seed: int) -> None:
    labels, scores = _data(seed)
    costs = ThresholdConfig(
        policy="min_expected_cost", false_positive_cost=5, false_negative_cost=120
    )
    day = analysis.Day(10_000, float(labels.mean()), 5, 120)
    config = ReportConfig(target_recalls=(0.8,))
    points = analysis.choose_points(labels, scores, 0.5, day, config)
    # At the validation rate, cost per day is proportional to 5 FP + 120 FN: the same minimum.
    assert points["cost_minimum"][1] == choose_threshold(labels, scores, costs)
    recall = ThresholdConfig(policy="target_recall", target_recall=0.8)
    assert points["recall_80"][1] == choose_threshold(labels, scores, recall)


def test_the_capacity_point_is_the_lowest_threshold_that_fits() -> None:
    labels, scores = _data(4)
    day = analysis.Day(10_000, float(labels.mean()), 5, 120)
    config = ReportConfig(review_capacity_per_day=800)
    t = analysis.choose_points(labels, scores, 0.5, day, config)["capacity"][1]

    def reviews(threshold: float) -> float:
        c = analysis.Counts.at(labels, scores, threshold)
        fpr, tpr = c.fp / (c.fp + c.tn), c.tp / (c.tp + c.fn)
        return day.negatives * fpr + day.positives * tpr

    assert reviews(t) <= 800
    lower = scores[scores < t].max()
    assert reviews(lower) > 800


def test_per_day_figures_scale_the_rate_intervals() -> None:
    counts = analysis.Counts(tp=170, fp=1158, tn=8609, fn=63)
    day = analysis.Day(10_000, 0.0233, 5, 120)
    figures = day.figures(counts)
    _, _fpr_low, fpr_high = counts.fpr_bounds()
    _, fnr_low, fnr_high = counts.fnr_bounds()
    assert figures["false_alarms_per_day"].value == pytest.approx(day.negatives * 1158 / 9767)
    assert figures["missed_per_day"].low == pytest.approx(day.positives * fnr_low, abs=1e-5)
    assert figures["caught_per_day"].low == pytest.approx(day.positives * (1 - fnr_high), abs=1e-5)
    assert figures["cost_per_day"].high == pytest.approx(
        5 * day.negatives * fpr_high + 120 * day.positives * fnr_high, abs=1e-4
    )
    for e in figures.values():
        assert e.low <= e.value <= e.high


def test_calibration_brier_is_sklearns() -> None:
    labels, scores = _data(5)
    cal = analysis.calibration(labels, scores, 10)
    assert cal.brier == pytest.approx(brier_score_loss(labels, scores), abs=1e-6)
    assert sum(b.rows for b in cal.bins) == len(labels)
    assert cal.brier_baseline == pytest.approx(labels.mean() * (1 - labels.mean()), abs=1e-6)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("8%", "an"),
        ("11%", "an"),
        ("18%", "an"),
        ("80%", "an"),
        ("24%", "a"),
        ("1%", "a"),
        ("100%", "a"),
        ("1,100", "a"),
        ("800", "an"),
        ("18,000", "an"),
        ("10.7%", "a"),
        ("11.3%", "an"),
        ("8.5%", "an"),
        ("18.2%", "an"),
        ("1.8%", "a"),
    ],
)
def test_article(text: str, word: str) -> None:
    assert analysis.article(text) == word


def test_the_sentence_uses_the_words_and_the_intervals() -> None:
    words = ReportWords(
        model="churn model",
        positive="churning customer",
        negative="loyal customer",
        flagged="flagged as likely to churn",
    )
    e = analysis.estimate
    values = {
        "fnr": e(0.27, 0.22, 0.33),
        "fpr": e(0.12, 0.11, 0.13),
        "false_alarms_per_day": e(1180.2, 1100, 1260),
        "missed_per_day": e(6.3, 5.1, 7.7),
        "caught_per_day": e(17, 15.6, 18.2),
    }
    text = analysis.sentence(analysis.headline_parts(words.model, values, words))
    assert text == (
        "With these settings, the churn model would have a 27% (22–33%) false negative rate "
        "and a 12% (11–13%) false positive rate. Every day, an average of 1,180 (1,100–1,260) "
        "loyal customers would be flagged as likely to churn and sent for manual review, and an "
        "average of 6 (5–8) churning customers would be missed. An average of 17 (16–18) "
        "churning customers would be correctly caught."
    )


@pytest.mark.parametrize(
    ("fpr", "expected"),
    [
        # Whole percents would read "11% (10–11%)": the estimate on an end of its interval.
        ((0.107095, 0.101116, 0.113383), "a 10.7% (10.1–11.3%) false positive rate"),
        ((0.12, 0.11, 0.13), "a 12% (11–13%) false positive rate"),
        ((0.0021, 0.0012, 0.0037), "a 0.2% (0.1–0.4%) false positive rate"),
    ],
)
def test_rates_get_a_decimal_only_when_whole_percents_would_hide_the_interval(
    fpr: tuple[float, float, float], expected: str
) -> None:
    e = analysis.estimate
    values = {
        "fnr": e(0.27, 0.22, 0.33),
        "fpr": e(*fpr),
        "false_alarms_per_day": e(1180.2, 1100, 1260),
        "missed_per_day": e(6.3, 5.1, 7.7),
        "caught_per_day": e(17, 15.6, 18.2),
    }
    words = ReportWords()
    text = analysis.sentence(analysis.headline_parts(words.model, values, words))
    assert expected in text


def test_slices_rank_by_excess_cost_and_suppress_small_ones() -> None:
    import pandas as pd

    from mlgitops.profile import CategoricalProfile, ReferenceProfile

    labels = np.array([1, 1, 0, 0] * 50 + [0] * 10)
    scores = np.array([0.1, 0.9, 0.2, 0.1] * 50 + [0.05] * 10)
    frame = pd.DataFrame({"channel": ["web", "pos", "pos", "web"] * 50 + ["atm"] * 10})
    profile = ReferenceProfile(
        n_rows=1,
        target="y",
        positive_class="1",
        label_rate=0.5,
        features={"channel": CategoricalProfile(count=1, missing_rate=0, frequencies={"web": 1.0})},
    )
    costs = ThresholdConfig(policy="fixed", false_positive_cost=1, false_negative_cost=10)
    top, suppressed, overall = analysis.slices(frame, labels, scores, 0.5, profile, costs, 20)
    assert suppressed == 1  # atm: 10 rows
    assert [s.segment for s in top] == ["web", "pos"]
    # web: 50 misses at 10 each; the excess is over the overall rate on its 100 rows.
    assert top[0].excess_cost == pytest.approx(500 - overall / 1000 * 100)
    assert top[0].fnr.value == 1.0


# --- the reliability diagram's bin sizes (issue 18: 'n=1,000' labels smeared into each other) ---


def test_equal_bins_state_their_size_once() -> None:
    from mlgitops.reports.svg import reliability_plot

    bins = [(0.001 * (i + 1), 0.001 * i, 0.0, 0.003 * (i + 1), 1000) for i in range(10)]
    plot = reliability_plot(bins)
    assert "n=" not in plot
    assert plot.count("1,000 rows per bin") == 1


def test_unequal_bin_labels_never_overlap() -> None:
    import itertools
    import re

    from mlgitops.reports.svg import LABEL_WIDTH, reliability_plot

    # Crowded near zero, as scores are: most labels must go, the sparse right-hand ones stay.
    bins = [(0.0005 * (i + 1), 0.0, 0.0, 0.002, 900 + i) for i in range(8)]
    bins += [(0.2, 0.2, 0.15, 0.25, 40), (0.5, 0.5, 0.4, 0.6, 12)]
    plot = reliability_plot(bins)
    xs = [float(x) for x in re.findall(r'<text x="([\d.]+)"[^>]*>n=', plot)]
    assert "n=12<" in plot
    assert "n=40<" in plot
    assert 2 < len(xs) < len(bins)
    assert all(b - a >= LABEL_WIDTH for a, b in itertools.pairwise(xs))
