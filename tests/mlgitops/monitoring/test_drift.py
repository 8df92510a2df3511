"""Input drift of `mlgitops monitor` on the profile's bins: unchanged traffic stays quiet, a
shift is flagged, p-values are corrected across inputs, new categories are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import drift
from mlgitops.monitoring.windows import Windows
from mlgitops.profile import CategoricalProfile, NumericProfile

AMOUNT = NumericProfile(
    count=20_000, missing_rate=0.01, min=0.0, max=10.0, mean=5.0, std=2.0,
    bin_edges=[2.0, 4.0, 6.0, 8.0], bin_fractions=[0.2, 0.2, 0.2, 0.2, 0.2],
)  # fmt: skip
CHANNEL = CategoricalProfile(count=20_000, missing_rate=0.0, frequencies={"web": 0.6, "pos": 0.4})
CONFIG = MonitoringConfig(min_rows=100)


def _windows(n: int, per_window: int) -> Windows:
    index = np.arange(n) // per_window
    count = int(index.max()) + 1
    return Windows([f"w{i}" for i in range(count)], [], [], index.astype(np.int64))


def test_unchanged_inputs_do_not_drift_and_a_shift_does() -> None:
    rng = np.random.default_rng(1)
    same = rng.uniform(0, 10, 2_000)
    shifted = rng.uniform(4, 10, 2_000)  # nothing below 4 any more
    values = np.r_[same, shifted]
    channel = np.r_[rng.choice(["web", "pos"], 4_000, p=[0.6, 0.4])]
    windows = _windows(4_000, 2_000)
    families = [
        drift.feature_counts("amount", AMOUNT, values, windows),
        drift.feature_counts("channel", CHANNEL, channel, windows),
    ]
    quiet = drift.drift_rows(families, 0, CONFIG, CONFIG.false_alarm_rate / 2)
    moved = drift.drift_rows(families, 1, CONFIG, CONFIG.false_alarm_rate / 2)
    assert quiet["amount"]["drift"] == 0
    assert quiet["channel"]["drift"] == 0
    assert moved["amount"]["drift"] == 1
    assert moved["channel"]["drift"] == 0
    assert moved["amount"]["psi"] > moved["amount"]["psi_threshold"]
    assert (moved["amount"]["test"], moved["amount"]["effect_name"]) == ("ks", "ks_d")
    assert (moved["channel"]["test"], moved["channel"]["effect_name"]) == ("chi2", "cramers_v")
    for figures in (*quiet.values(), *moved.values()):
        assert figures["p_adjusted"] >= figures["p_value"]  # Holm never lowers a p-value
        assert figures["rows"] == 2_000


def test_too_few_rows_never_drift() -> None:
    windows = _windows(50, 50)
    family = drift.feature_counts("amount", AMOUNT, np.full(50, 9.0), windows)
    figures = drift.drift_rows([family], 0, CONFIG, CONFIG.false_alarm_rate)
    assert figures["amount"]["psi"] > figures["amount"]["psi_threshold"]
    assert figures["amount"]["drift"] == 0


def test_new_categories_are_named_per_window_with_their_earliest_ids() -> None:
    # The merged tally's tables (monitoring.tally): unseen rows per (subject, window, value)
    # and the earliest example ids of each; window keys are event times floored (ns).
    unseen = pd.DataFrame(
        {"subject": [1, 1, 1], "window": [10, 10, 20], "value": ["bnpl", "crypto", "bnpl"],
         "rows": [2, 1, 1]}
    )  # fmt: skip
    examples = pd.DataFrame(
        {"subject": [1, 1, 1], "window": [10, 10, 20], "value": ["bnpl", "crypto", "bnpl"],
         "event_ns": [1, 3, 4], "part": [0, 0, 1], "row": [1, 3, 0],
         "id": ["tx_1", "tx_3", "tx_4"]}
    )  # fmt: skip
    found = drift.new_categories(unseen, examples, ["amount", "channel"], np.array([10, 20]))
    assert found == {
        0: {"channel": {"bnpl": {"count": 2, "examples": ["tx_1"]},
                        "crypto": {"count": 1, "examples": ["tx_3"]}}},
        1: {"channel": {"bnpl": {"count": 1, "examples": ["tx_4"]}}},
    }  # fmt: skip


def test_missing_rate_carries_a_wilson_interval_and_unseen_rows_are_counted() -> None:
    values = np.array(["web"] * 150 + ["bnpl"] * 30 + [None] * 20, dtype=object)
    windows = _windows(200, 200)
    family = drift.feature_counts("channel", CHANNEL, values, windows)
    figures: dict = {}
    drift.add_missing_and_unseen(figures, family, family.counts[0], 200.0, 0.99, {"bnpl": {}})
    interval = binomtest(20, 200).proportion_ci(confidence_level=0.99, method="wilson")
    assert figures["missing_rate"] == 0.1
    assert figures["missing_rate_low"] == pytest.approx(interval.low, rel=1e-9)
    assert figures["missing_rate_high"] == pytest.approx(interval.high, rel=1e-9)
    assert (figures["unseen"], figures["unseen_share"]) == (30, 0.15)
    numeric: dict = {}
    amount = drift.feature_counts("amount", AMOUNT, np.ones(200), windows)
    drift.add_missing_and_unseen(numeric, amount, amount.counts[0], 200.0, 0.99, {})
    assert "unseen" not in numeric
    assert numeric["reference_missing_rate"] == 0.01
