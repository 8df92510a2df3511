"""Input drift of `mlgitops monitor`: each feature and the score against the reference profile.

Every count is over the profile's fixed bins (mlgitops.profile), so a window's numbers equal
what the generated Prometheus rules compute. Per window and input: PSI against a
sample-size-aware threshold, JS distance, a KS or χ² test corrected across inputs with an
effect size beside its p-value, the missing rate with its Wilson interval, and for categorical
features the rows in unseen categories, named with counts and example ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import drift_stats
from mlgitops.monitoring.logs import SCORE
from mlgitops.monitoring.reference import ScoreReference
from mlgitops.monitoring.windows import Windows, window_counts
from mlgitops.profile import (
    UNSEEN_BIN,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
    bin_indices,
    bin_labels,
    reference_fractions,
)
from mlgitops.stats import wilson

SCORE_SUBJECT = "score"


@dataclass(frozen=True)
class FeatureCounts:
    name: str
    spec: FeatureProfile
    labels: list[str]
    ref_counts: np.ndarray
    counts: np.ndarray  # windows x bins
    bins: np.ndarray  # bin of each row


def feature_counts(
    name: str, spec: FeatureProfile, values: np.ndarray, windows: Windows
) -> FeatureCounts:
    labels = bin_labels(spec)
    bins = bin_indices(spec, values)
    ref = reference_fractions(spec) * spec.count
    counts = window_counts(windows.index, bins, len(windows.keys), len(labels))
    return FeatureCounts(name, spec, labels, ref, counts, bins)


def _test(fc: FeatureCounts, row: np.ndarray) -> tuple[str, drift_stats.TestResult]:
    if isinstance(fc.spec, NumericProfile):
        # KS on the value bins; the missing share has its own check.
        return "ks", drift_stats.ks_binned(fc.ref_counts[:-1], row[:-1])
    return "chi2", drift_stats.chi2_homogeneity(fc.ref_counts, row)


def drift_rows(
    families: list[FeatureCounts], w: int, config: MonitoringConfig, alpha_each: float
) -> dict[str, dict[str, Any]]:
    """One window's drift figures for every feature (and the score), corrected together."""
    results: dict[str, dict[str, Any]] = {}
    p_values = []
    for fc in families:
        row = fc.counts[w]
        n = float(row.sum())
        dof = drift_stats.psi_dof(fc.ref_counts)
        test_name, test = _test(fc, row)
        results[fc.name] = {
            "rows": n,
            "psi": drift_stats.psi(fc.ref_counts, row),
            "psi_threshold": drift_stats.psi_threshold(
                fc.spec.count, n, dof, alpha_each, config.min_psi
            ),
            "js": drift_stats.js_distance(fc.ref_counts, row),
            "test": test_name,
            "statistic": test.statistic,
            "p_value": test.p_value,
            "effect": test.effect,
            "effect_name": "ks_d" if test_name == "ks" else "cramers_v",
        }
        p_values.append(test.p_value)
    adjusted = drift_stats.adjust(np.asarray(p_values), config.correction)
    for fc, p_adj in zip(families, adjusted, strict=True):
        result = results[fc.name]
        result["p_adjusted"] = float(p_adj)
        result["drift"] = int(
            result["rows"] >= config.min_rows
            and result["psi"] > result["psi_threshold"]
            and p_adj < config.false_alarm_rate
        )
    return results


def table_drift(
    predictions: pd.DataFrame,
    profile: ReferenceProfile,
    reference: ScoreReference,
    config: MonitoringConfig,
) -> dict[str, dict[str, Any]]:
    """Drift of the whole table (one window) for every feature and the score: what a
    dataset-drift report computes, on the profile's bins."""
    n = len(predictions)
    windows = Windows(["all"], [], [], np.zeros(n, dtype=np.int64))
    families = [
        feature_counts(name, spec, predictions[name], windows)
        for name, spec in profile.features.items()
    ]
    families.append(
        feature_counts(SCORE_SUBJECT, reference.score, predictions[SCORE].to_numpy(), windows)
    )
    return drift_rows(families, 0, config, config.false_alarm_rate / len(families))


def new_categories(
    unseen: pd.DataFrame, examples: pd.DataFrame, names: list[str], keys: np.ndarray
) -> dict[int, dict[str, dict[str, dict[str, Any]]]]:
    """window -> feature -> unseen value -> its count and its first example ids, from the
    merged tally's tables (monitoring.tally: `unseen` sorted by subject, window key and value;
    `examples` the earliest ids of each); `names` are the subjects, `keys` the window keys."""
    out: dict[int, dict[str, dict[str, dict[str, Any]]]] = {}
    if unseen.empty:
        return out
    ids: dict[tuple, list[str]] = {}
    for row in examples.itertuples(index=False):  # in (event time, partition, row) order
        group = (int(row.subject), int(row.window), str(row.value))
        ids.setdefault(group, []).append(str(row.id))
    for row in unseen.itertuples(index=False):  # sorted by subject, window, value
        w = int(np.searchsorted(keys, int(row.window)))
        entry = out.setdefault(w, {}).setdefault(names[int(row.subject)], {})
        group = (int(row.subject), int(row.window), str(row.value))
        entry[str(row.value)] = {"count": int(row.rows), "examples": ids.get(group, [])}
    return out


def add_missing_and_unseen(
    figures: dict[str, Any],
    fc: FeatureCounts,
    row: np.ndarray,
    n: float,
    confidence: float,
    window_new: dict[str, dict[str, Any]],
) -> None:
    """A feature's missing rate (Wilson interval) beside its drift figures; for a categorical
    feature, its unseen rows and the new categories among them."""
    missing = row[-1]
    low, high = wilson(missing, n, confidence)
    figures.update(
        missing_rate=missing / n,
        missing_rate_low=low,
        missing_rate_high=high,
        reference_missing_rate=fc.spec.missing_rate,
    )
    if isinstance(fc.spec, CategoricalProfile):
        unseen_count = row[fc.labels.index(UNSEEN_BIN)]
        figures["unseen"] = unseen_count
        figures["unseen_share"] = unseen_count / n
        figures["new_categories"] = window_new


def add_flag_rate(
    figures: dict[str, Any], flagged: float, n: float, confidence: float, reference_rate: float
) -> None:
    """The score's flag rate (Wilson interval) beside its drift figures."""
    low, high = wilson(flagged, n, confidence)
    figures.update(
        flag_rate=flagged / n,
        flag_rate_low=low,
        flag_rate_high=high,
        reference_flag_rate=reference_rate,
    )
