"""The report's figures, from labels, scores and the training split: pure functions, no I/O.

Every choice (an operating point) is made on the validation split and every figure is measured
on the test split, like the released threshold. A production day has `daily_volume`
transactions of which a share `positive_rate` are positives; per-day counts scale the test
rates to it, and their intervals scale the rates' Wilson intervals (the positive rate is taken
as given: it is an assumption, stated, not an estimate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlgitops.config import ReportConfig, ReportWords, ThresholdConfig
from mlgitops.confusion import Confusion, error_cost
from mlgitops.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    normalize_category,
)
from mlgitops.reports.model import (
    Calibration,
    CalibrationBin,
    Estimate,
    Example,
    FeatureValue,
    Figure,
    MetricChange,
    OperatingPoint,
    Slice,
)
from mlgitops.stats import wilson

# A category rarer than this in training is flagged in the examples.
RARE_CATEGORY = 0.01
# Numeric values outside these training percentiles are flagged in the examples.
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
CURVE_POINTS = 120
MAX_SLICES = 12
DIGITS = 6


def _r(value: float) -> float:
    return round(float(value), DIGITS)


def estimate(value: float, low: float, high: float) -> Estimate:
    return Estimate(value=_r(value), low=_r(low), high=_r(high))


@dataclass(frozen=True)
class Counts(Confusion):
    """The confusion counts with the report's Wilson intervals on the error rates."""

    def fpr_bounds(self) -> tuple[float, float, float]:
        return (self.fpr, *wilson(*self.rate_counts()["fpr"]))

    def fnr_bounds(self) -> tuple[float, float, float]:
        return (self.fnr, *wilson(*self.rate_counts()["fnr"]))

    def fpr_estimate(self) -> Estimate:
        return estimate(*self.fpr_bounds())

    def fnr_estimate(self) -> Estimate:
        return estimate(*self.fnr_bounds())


@dataclass(frozen=True)
class Day:
    """A production day: volume, positive rate and the business costs."""

    volume: float
    positive_rate: float
    fp_cost: float
    fn_cost: float

    @property
    def positives(self) -> float:
        return self.volume * self.positive_rate

    @property
    def negatives(self) -> float:
        return self.volume * (1.0 - self.positive_rate)

    def cost(self, fpr: float | np.ndarray, fnr: float | np.ndarray) -> float | np.ndarray:
        # The errors' cost of a day at these rates: a rate of 1 costs cost·volume of its class
        # (grouped so, the figures are the same to the last bit as before the shared rule).
        return error_cost(fpr, fnr, self.fp_cost * self.negatives, self.fn_cost * self.positives)

    def figures(self, counts: Counts) -> dict[str, Estimate]:
        """Per-day counts; each bound uses the rates' bounds in the same direction, so the cost
        and review intervals are conservative (they treat the two rates as moving together)."""
        # Unrounded rates: a 6-digit rate times 10,000 a day would be off in the 3rd decimal.
        lo_hi = tuple(zip(counts.fpr_bounds(), counts.fnr_bounds(), strict=True))
        false_alarms = [self.negatives * a for a, _ in lo_hi]
        missed = [self.positives * m for _, m in lo_hi]
        caught = [self.positives * (1 - m) for _, m in lo_hi]
        # caught moves against the miss rate: its low bound comes from the high miss rate.
        caught = [caught[0], caught[2], caught[1]]
        reviews = [f + c for f, c in zip(false_alarms, caught, strict=True)]
        cost = [self.cost(a, m) for a, m in lo_hi]
        return {
            "false_alarms_per_day": estimate(*false_alarms),
            "missed_per_day": estimate(*missed),
            "caught_per_day": estimate(*caught),
            "reviews_per_day": estimate(*reviews),
            "cost_per_day": estimate(*cost),
        }


def rate_curves(
    labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at each threshold, flagged iff score >= threshold."""
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    below = np.searchsorted(sorted_scores, thresholds, side="left")
    positives_below = np.concatenate([[0], np.cumsum(sorted_labels)])[below]
    negatives_below = below - positives_below
    n_pos = max(int(labels.sum()), 1)
    n_neg = max(len(labels) - int(labels.sum()), 1)
    tpr = (n_pos - positives_below) / n_pos
    fpr = (n_neg - negatives_below) / n_neg
    return fpr, tpr


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    # Every distinct score is a possible cut; just above 1.0 flags nothing.
    return np.append(np.unique(scores), np.nextafter(1.0, 2.0))


def choose_points(
    val_labels: np.ndarray,
    val_scores: np.ndarray,
    released: float,
    day: Day,
    config: ReportConfig,
) -> dict[str, tuple[str, float]]:
    """{key: (label, threshold)} of the candidate operating points, each chosen on validation."""
    thresholds = candidate_thresholds(val_scores)
    fpr, tpr = rate_curves(val_labels, val_scores, thresholds)
    points = {"released": ("released", float(released))}
    cost = day.cost(fpr, 1 - tpr)
    # Ties: the highest threshold, fewest alerts for the same money (the evaluate stage's rule).
    best = np.flatnonzero(cost == cost.min())[-1]
    points["cost_minimum"] = ("lowest cost per day", float(thresholds[best]))
    for target in config.target_recalls:
        meets = np.flatnonzero(tpr >= target)
        at = thresholds[meets[-1]] if meets.size else thresholds[0]
        points[f"recall_{round(target * 100)}"] = (f"catch {target:.0%}", float(at))
    reviews = day.negatives * fpr + day.positives * tpr
    # Reviews fall as the threshold rises; the lowest threshold that fits catches the most.
    fits = np.flatnonzero(reviews <= config.review_capacity_per_day)
    at = thresholds[fits[0]] if fits.size else thresholds[-1]
    points["capacity"] = ("fits review capacity", float(at))
    return points


def operating_point(
    label: str,
    threshold: float,
    val_labels: np.ndarray,
    val_scores: np.ndarray,
    test_labels: np.ndarray,
    test_scores: np.ndarray,
    day: Day,
    capacity: float,
) -> OperatingPoint:
    validation = Counts.at(val_labels, val_scores, threshold)
    test = Counts.at(test_labels, test_scores, threshold)
    figures = day.figures(test)
    n_val_pos = validation.tp + validation.fn
    return OperatingPoint(
        label=label,
        threshold=float(threshold),
        validation_recall=_r(validation.tp / n_val_pos if n_val_pos else 0.0),
        fpr=test.fpr_estimate(),
        fnr=test.fnr_estimate(),
        reviews_per_day=figures["reviews_per_day"],
        missed_per_day=figures["missed_per_day"],
        caught_per_day=figures["caught_per_day"],
        cost_per_day=figures["cost_per_day"],
        within_capacity=figures["reviews_per_day"].value <= capacity,
    )


def cost_curve(
    val_labels: np.ndarray,
    val_scores: np.ndarray,
    test_labels: np.ndarray,
    test_scores: np.ndarray,
    day: Day,
) -> list[tuple[float, float, float]]:
    """(threshold, validation cost/day, test cost/day) on a log-spaced threshold grid."""
    both = np.concatenate([val_scores, test_scores])
    low = max(float(np.quantile(both, 0.01)), 1e-6)
    grid = np.unique(np.geomspace(low, 1.0, CURVE_POINTS).round(DIGITS))
    out = []
    val_fpr, val_tpr = rate_curves(val_labels, val_scores, grid)
    test_fpr, test_tpr = rate_curves(test_labels, test_scores, grid)
    for i, t in enumerate(grid):
        out.append(
            (
                float(t),
                _r(day.cost(val_fpr[i], 1 - val_tpr[i])),
                _r(day.cost(test_fpr[i], 1 - test_tpr[i])),
            )
        )
    return out


def why_released(policy: str, threshold: ThresholdConfig, words: ReportWords) -> str:
    """One sentence on why the released point is the one chosen (from `threshold.policy`)."""
    if policy == "min_expected_cost":
        return (
            "The released threshold is the one with the lowest expected cost on the validation "
            f"split, where a false alarm costs {threshold.false_positive_cost:g} "
            f"{threshold.currency} of review and a missed {words.positive} "
            f"{threshold.false_negative_cost:g} {threshold.currency}."
        )
    if policy == "target_recall":
        return (
            "The released threshold is the highest one that still catches "
            f"{threshold.target_recall:.0%} of the {plural(words, positive=True)} "
            "on the validation split."
        )
    return f"The released threshold is fixed in params.yaml at {threshold.fixed_threshold:g}."


def plural(words: ReportWords, positive: bool) -> str:
    if positive:
        return words.positive_plural or words.positive + "s"
    return words.negative_plural or words.negative + "s"


# Formats shared with the renderer, so the sentence in the JSON twin is the page's text.
def fmt_pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def fmt_pct_bare(value: float) -> str:
    return f"{value * 100:.0f}"


def fmt_pct1(value: float) -> str:
    return f"{value * 100:.1f}%"


def fmt_pct1_bare(value: float) -> str:
    return f"{value * 100:.1f}"


def rate_formats(estimate: Estimate) -> tuple[str, str]:
    """Whole percents, unless rounding would put the estimate on an end of its interval
    ("11% (10–11%)" reads as a mistake): then one decimal."""
    whole = [fmt_pct_bare(v) for v in (estimate.low, estimate.value, estimate.high)]
    if len(set(whole)) == 3:
        return "pct", "pct_bare"
    return "pct1", "pct1_bare"


def fmt_count(value: float) -> str:
    return f"{value:,.0f}"


def article(formatted: str) -> str:
    # "an 8%", "an 11%", "an 18.2%", "an 80%": the numbers read aloud with a vowel sound.
    digits = formatted.replace(",", "").rstrip("%").split(".")[0]
    vowel = digits.startswith("8") or (len(digits) in (2, 5) and digits[:2] in ("11", "18"))
    return "an" if vowel else "a"


# (text, format, key): text runs have no format; a number is `key` ("fnr.low") of the headline.
Part = tuple[str, str | None, str | None]

FORMATS = {
    "pct": fmt_pct,
    "pct_bare": fmt_pct_bare,
    "pct1": fmt_pct1,
    "pct1_bare": fmt_pct1_bare,
    "count": fmt_count,
}


# The figures of the headline sentence, in the order it states them.
SENTENCE_RATES = ("fnr", "fpr")
SENTENCE_COUNTS = ("false_alarms_per_day", "missed_per_day", "caught_per_day")


def sentence_numbers(values: Mapping[str, Estimate]) -> list[tuple[str, str]]:
    """("key.field", format) of each number of the headline sentence, in order: the formats the
    sentence is written with and the renderer marks it up with."""
    numbers = []
    for key in (*SENTENCE_RATES, *SENTENCE_COUNTS):
        if key in SENTENCE_RATES:
            pct, bare = rate_formats(values[key])
            formats = (pct, bare, pct)
        else:
            formats = ("count", "count", "count")
        fields = zip(("value", "low", "high"), formats, strict=True)
        numbers += [(f"{key}.{field}", fmt) for field, fmt in fields]
    return numbers


def headline_parts(model: str, values: dict[str, Estimate], words: ReportWords) -> list[Part]:
    """The sentence as parts. Joined they are the plain sentence of the JSON twin; the renderer
    marks up each number with the key it comes from."""
    pos, neg = plural(words, True), plural(words, False)
    formats = dict(sentence_numbers(values))

    def num(key: str, field: str) -> Part:
        fmt = formats[f"{key}.{field}"]
        return (FORMATS[fmt](getattr(values[key], field)), fmt, f"{key}.{field}")

    def interval(key: str, after: str) -> list[Part]:
        return [
            num(key, "value"),
            (" (", None, None),
            num(key, "low"),
            ("–", None, None),
            num(key, "high"),
            (after, None, None),
        ]

    fnr, fpr = interval("fnr", ") false negative rate"), interval("fpr", ") false positive rate")
    return [
        (f"With these settings, the {model} would have {article(fnr[0][0])} ", None, None),
        *fnr,
        (f" and {article(fpr[0][0])} ", None, None),
        *fpr,
        (". Every day, an average of ", None, None),
        *interval("false_alarms_per_day", ")"),
        (
            f" {neg} would be {words.flagged} and sent for manual review, and an average of ",
            None,
            None,
        ),
        *interval("missed_per_day", ")"),
        (f" {pos} would be missed. An average of ", None, None),
        *interval("caught_per_day", ")"),
        (f" {pos} would be correctly caught.", None, None),
    ]


def sentence(parts: list[Part]) -> str:
    return "".join(text for text, _, _ in parts)


def assumptions(
    day: Day, source: str, capacity: float, data: dict[str, str | None], words: ReportWords
) -> list[str]:
    period = (
        f"the test period ({data['test_start']} to {data['test_end']})"
        if data.get("test_start")
        else "the test split"
    )
    return [
        f"{fmt_count(day.volume)} transactions are scored per day (report.daily_volume).",
        f"{day.positive_rate:.2%} of them are {plural(words, True)} "
        + (
            "(report.production_positive_rate)."
            if source == "params"
            else "(the test split's rate; set report.production_positive_rate if production "
            "differs)."
        ),
        f"Production resembles {period}: the rates were measured there, at the released "
        "threshold, which was chosen on the validation period before it.",
        "The labels are the data's own (data.target); a positive the labels miss, the figures "
        "miss too.",
        f"Every flagged transaction is reviewed; the team reviews up to "
        f"{fmt_count(capacity)} per day (report.review_capacity_per_day).",
        "Intervals are 95 %: Wilson intervals for rates; per-day counts scale the rate "
        "intervals; costs combine both rates' bounds (conservative).",
    ]


def _segment_labels(
    column: pd.Series, feature: str, profile: NumericProfile | CategoricalProfile
) -> pd.Series:
    if isinstance(profile, NumericProfile):
        edges = profile.bin_edges
        values = column.to_numpy(dtype="float64")
        codes = np.searchsorted(np.asarray(edges), values, side="right")
        names = []
        for i in range(len(edges) + 1):
            if i == 0:
                names.append(f"{feature} < {edges[0]:.4g}" if edges else "all")
            elif i == len(edges):
                names.append(f"{feature} ≥ {edges[-1]:.4g}")
            else:
                names.append(f"{edges[i - 1]:.4g} ≤ {feature} < {edges[i]:.4g}")
        labels = np.array(names, dtype=object)[codes]
        labels[np.isnan(values)] = "(missing)"
        return pd.Series(labels, index=column.index)
    return column.map(lambda v: normalize_category(v) or "(missing)")


def slices(
    frame: pd.DataFrame,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    profile: ReferenceProfile,
    costs: ThresholdConfig,
    min_count: int,
) -> tuple[list[Slice], int, float]:
    """Segments (each category, each profile bin) ranked by excess cost over the overall rate:
    (top slices, slices suppressed for size, overall cost per 1,000)."""
    flagged = scores >= threshold
    row_cost = error_cost(
        flagged & (labels == 0),
        ~flagged & (labels == 1),
        costs.false_positive_cost,
        costs.false_negative_cost,
    )
    overall = float(row_cost.mean())
    found: list[Slice] = []
    suppressed = 0
    for feature, feature_profile in profile.features.items():
        segments = _segment_labels(frame[feature], feature, feature_profile)
        for segment in sorted(segments.unique(), key=str):
            mask = (segments == segment).to_numpy()
            n = int(mask.sum())
            if n < min_count:
                suppressed += 1
                continue
            counts = Counts.at(labels[mask], scores[mask], threshold)
            cost = float(row_cost[mask].sum())
            found.append(
                Slice(
                    feature=feature,
                    segment=str(segment),
                    rows=n,
                    positives=counts.tp + counts.fn,
                    fnr=counts.fnr_estimate() if counts.positives else None,
                    fpr=counts.fpr_estimate() if counts.negatives else None,
                    cost_per_1000=_r(1000.0 * cost / n),
                    excess_cost=_r(cost - overall * n),
                )
            )
    found.sort(key=lambda s: (-s.excess_cost, s.feature, s.segment))
    return found[:MAX_SLICES], suppressed, _r(1000.0 * overall)


def _describe(value: object, feature: str, train: pd.DataFrame, fp: object) -> FeatureValue:
    if isinstance(fp, NumericProfile):
        number = float(value) if value is not None else math.nan
        if math.isnan(number):
            unusual = "missing (never missing in training)" if fp.missing_rate == 0 else None
            return FeatureValue(name=feature, value="(missing)", unusual=unusual)
        column = train[feature].dropna().to_numpy(dtype="float64")
        low, high = np.percentile(column, [LOW_PERCENTILE, HIGH_PERCENTILE])
        unusual = None
        if number < low:
            unusual = f"below the training 1st percentile ({low:.4g})"
        elif number > high:
            unusual = f"above the training 99th percentile ({high:.4g})"
        return FeatureValue(name=feature, value=f"{number:.6g}", unusual=unusual)
    assert isinstance(fp, CategoricalProfile)
    category = normalize_category(value)
    if category is None:
        unusual = "missing (never missing in training)" if fp.missing_rate == 0 else None
        return FeatureValue(name=feature, value="(missing)", unusual=unusual)
    share = fp.frequencies.get(category)
    unusual = None
    if share is None:
        unusual = "not seen in training"
    elif share < RARE_CATEGORY:
        unusual = f"rare in training ({share:.2%} of rows)"
    return FeatureValue(name=feature, value=category, unusual=unusual)


def examples(
    frame: pd.DataFrame,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    train: pd.DataFrame,
    profile: ReferenceProfile,
    k: int,
) -> tuple[list[Example], list[Example]]:
    """The most confident mistakes: highest-scored false alarms, lowest-scored misses."""
    rows = np.arange(len(labels))
    false_alarms = rows[(scores >= threshold) & (labels == 0)]
    misses = rows[(scores < threshold) & (labels == 1)]
    # Ties by row order, so the choice is the same on every run.
    top_fp = false_alarms[np.lexsort((false_alarms, -scores[false_alarms]))][:k]
    top_fn = misses[np.lexsort((misses, scores[misses]))][:k]

    def build(row: int) -> Example:
        features = [
            _describe(frame[name].iloc[row], name, train, fp)
            for name, fp in profile.features.items()
        ]
        return Example(row=int(row), score=_r(scores[row]), features=features)

    return [build(r) for r in top_fp], [build(r) for r in top_fn]


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int) -> Calibration:
    """Reliability on equal-count score bins (fraud scores crowd near 0, so equal-width bins
    would leave all but one nearly empty), with the Brier score and its base-rate baseline."""
    order = np.argsort(scores, kind="stable")
    out = []
    for part in np.array_split(order, bins):
        if part.size == 0:
            continue
        k = int(labels[part].sum())
        out.append(
            CalibrationBin(
                rows=int(part.size),
                mean_score=_r(scores[part].mean()),
                observed_rate=estimate(k / part.size, *wilson(k, part.size)),
            )
        )
    rate = float(labels.mean())
    return Calibration(
        brier=_r(np.mean((scores - labels) ** 2)),
        brier_baseline=_r(rate * (1 - rate)),
        bins=out,
    )


def metric_figures(metrics: dict) -> dict[str, Figure]:
    """Headline metrics of an evaluate.json (any version) as figures, with Wilson intervals
    where the counts are there to compute them."""
    figures: dict[str, Figure] = {}
    for name in ("threshold", "roc_auc", "pr_auc"):
        if isinstance(metrics.get(name), int | float):
            figures[name] = Figure(value=float(metrics[name]))
    counts = [metrics.get(k) for k in ("tp", "fp", "tn", "fn")]
    has_counts = all(isinstance(c, int) for c in counts)
    bases = Confusion(*counts).rate_counts() if has_counts else {}
    for name in ("recall", "fnr", "fpr", "precision"):
        k, n = bases.get(name, (0, 0))
        if n:
            low, high = wilson(k, n)
            figures[name] = Figure(value=_r(k / n), low=_r(low), high=_r(high))
        elif isinstance(metrics.get(name), int | float):
            figures[name] = Figure(value=float(metrics[name]))
    for name in ("alerts_per_1000", "missed_frauds_per_1000", "expected_cost_per_1000"):
        if isinstance(metrics.get(name), int | float):
            figures[name] = Figure(value=float(metrics[name]))
    return figures


def compare(current: dict, previous: dict | None) -> list[MetricChange]:
    now = metric_figures(current)
    before = metric_figures(previous) if previous is not None else {}
    return [MetricChange(name=k, current=v, previous=before.get(k)) for k, v in now.items()]
