"""Performance of `mlgitops monitor`: realized from the labels that arrived, label-free (CBPE)
from the calibrated scores, and both by declared segment.

Realized precision/recall/FPR/FNR carry Wilson intervals and are compared with the released
values (whose test split had sampling error too); the label-free expected cost is compared with
the reference's, its standard error counting both samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.config import MonitoringConfig
from mlgitops.confusion import Confusion, error_cost
from mlgitops.monitoring.alerts import Alert, rate_alerts
from mlgitops.monitoring.reference import OUTCOMES, ScoreReference, rate
from mlgitops.monitoring.tally import exact_totals
from mlgitops.monitoring.windows import window_sums
from mlgitops.stats import wilson


def realized_row_cost(reference: ScoreReference) -> tuple[float, float]:
    """Mean and standard deviation of one labelled row's realized cost on the test split."""
    counts = reference.realized
    n = sum(counts.values())
    c_fp, c_fn = reference.costs.false_positive, reference.costs.false_negative
    mean = error_cost(counts["fp"], counts["fn"], c_fp, c_fn) / n
    # The second moment: each error costs its square.
    second = error_cost(counts["fp"], counts["fn"], c_fp**2, c_fn**2) / n
    return mean, math.sqrt(max(second - mean * mean, 1e-12))


def confusion(
    flagged: np.ndarray, truth: np.ndarray, window: np.ndarray, n_windows: int
) -> dict[str, np.ndarray]:
    """Realized outcomes per window; a row without a label (NaN) counts in none."""
    labelled = ~np.isnan(truth)
    positive = labelled & (truth == 1)
    negative = labelled & (truth == 0)
    return {
        "tp": window_sums(window, (flagged & positive).astype(float), n_windows),
        "fp": window_sums(window, (flagged & negative).astype(float), n_windows),
        "tn": window_sums(window, (~flagged & negative).astype(float), n_windows),
        "fn": window_sums(window, (~flagged & positive).astype(float), n_windows),
    }


def realized_figures(
    c: dict[str, float], reference: ScoreReference, confidence: float
) -> dict[str, Any]:
    """Counts, rates with Wilson intervals and realized cost per 1,000 of labelled rows."""
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    n = tp + fp + tn + fn
    out: dict[str, Any] = {"labelled": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    # Window sums are float counts; the rate rule is the same as for whole counts.
    for name, (k, m) in Confusion(tp=tp, fp=fp, tn=tn, fn=fn).rate_counts().items():
        low, high = wilson(k, m, confidence)
        out[name] = rate(k, m)
        out[f"{name}_low"], out[f"{name}_high"] = (low, high) if m > 0 else (None, None)
    cost = error_cost(fp, fn, reference.costs.false_positive, reference.costs.false_negative)
    out["cost_per_1000"] = rate(1000.0 * cost, n)
    return out


def released_rates(counts: dict[str, int]) -> dict[str, float]:
    return {
        "fpr": rate(counts["fp"], counts["fp"] + counts["tn"]),
        "fnr": rate(counts["fn"], counts["fn"] + counts["tp"]),
    }


def released_highs(counts: dict[str, int], confidence: float) -> tuple[float, float]:
    """Upper Wilson bounds of the released FPR and FNR: the test split had sampling error too."""
    fpr_high = wilson(counts["fp"], counts["fp"] + counts["tn"], confidence)[1]
    fnr_high = wilson(counts["fn"], counts["fn"] + counts["tp"], confidence)[1]
    return fpr_high, fnr_high


def estimated_figures(
    expected: dict[str, float], cost_sum: float, n: float, reference: ScoreReference
) -> dict[str, Any]:
    """One window's label-free (CBPE) figures from its expected outcomes and expected cost."""
    e = expected
    cost_1000 = 1000.0 * cost_sum / n
    # The reference mean is itself an estimate from n_ref test rows: both errors count.
    se = 1000.0 * reference.expected_cost_std * math.sqrt(1.0 / n + 1.0 / reference.n_rows)
    z_cost = (cost_1000 - reference.expected_cost_per_1000) / se
    return {
        **{f"expected_{k}": v for k, v in e.items()},
        "fpr": rate(e["fp"], e["fp"] + e["tn"]),
        "fnr": rate(e["fn"], e["fn"] + e["tp"]),
        "precision": rate(e["tp"], e["tp"] + e["fp"]),
        "recall": rate(e["tp"], e["tp"] + e["fn"]),
        "cost_per_1000": cost_1000,
        "reference_cost_per_1000": reference.expected_cost_per_1000,
        "cost_z": z_cost,
    }


def label_delays(delay_hours: np.ndarray, labelled_rows: np.ndarray) -> dict[str, float | None]:
    """Median and 90th percentile of the hours from prediction to label, of labelled rows."""
    delays = delay_hours[labelled_rows]
    delays = delays[~np.isnan(delays)]
    return {
        "delay_hours_median": float(np.median(delays)) if delays.size else None,
        "delay_hours_p90": float(np.quantile(delays, 0.9)) if delays.size else None,
    }


def realized_cost_z(figures: dict[str, Any], mean: float, sd: float, n_reference: int) -> float:
    """A window's realized cost per row against the test split's, standardised."""
    cost_row = figures["cost_per_1000"] / 1000.0
    spread = sd * math.sqrt(1.0 / figures["labelled"] + 1.0 / n_reference)
    return (cost_row - mean) / spread


@dataclass(frozen=True)
class SegmentTable:
    column: str
    values: list[str]
    sums: dict[str, np.ndarray]  # windows x values


def segment_tables(
    cells: pd.DataFrame, costs: pd.DataFrame, config: MonitoringConfig, keys: np.ndarray
) -> list[SegmentTable]:
    """Per window and kept segment value (the `max_segment_values` most frequent of all
    windows): rows, flags, outcomes and expected cost, from the merged tally's tables
    (monitoring.tally: `cells` per column, window key and value; `costs` their exact cost
    pieces); `keys` are the window keys."""
    out = []
    n_windows = len(keys)
    for column in config.segments:
        here = cells[cells["column"] == column]
        if here.empty:
            continue
        totals = here.groupby("value", sort=False)["rows"].sum()
        ordered = sorted(totals.items(), key=lambda kv: (-kv[1], str(kv[0])))
        kept = [str(v) for v, _ in ordered[: config.max_segment_values]]
        code = pd.Index(kept).get_indexer(here["value"].astype(str))
        inside = code >= 0
        position = np.searchsorted(keys, here["window"].to_numpy(dtype=np.int64))
        table: dict[str, np.ndarray] = {}
        for name in ("rows", "flagged", *OUTCOMES):
            grid = np.zeros((n_windows, len(kept)))
            values = here[name].to_numpy(dtype="float64")
            np.add.at(grid, (position[inside], code[inside]), values[inside])
            table[name] = grid
        cost = costs[costs["column"] == column]
        grid = np.zeros((n_windows, len(kept)))
        for (window, value), total in exact_totals(cost, ["window", "value"]).items():
            j = kept.index(str(value)) if str(value) in kept else -1
            if j >= 0:
                grid[int(np.searchsorted(keys, int(window))), j] = total
        table["cost"] = grid
        out.append(SegmentTable(column, kept, table))
    return out


def segments(
    key: str,
    w: int,
    tables: list[SegmentTable],
    reference: ScoreReference,
    config: MonitoringConfig,
) -> tuple[dict[str, Any], list[Alert]]:
    """One window's figures per segment value ("column=value"), and its degraded segments."""
    out: dict[str, Any] = {}
    alerts: list[Alert] = []
    for table in tables:
        released = reference.segments.get(table.column, {})
        # Bonferroni over the segment values: each is one more look.
        conf = 1.0 - (1.0 - config.confidence) / max(len(table.values), 1)
        for j, value in enumerate(table.values):
            n = table.sums["rows"][w, j]
            if n == 0:
                continue
            c = {k: float(table.sums[k][w, j]) for k in OUTCOMES}
            figures = realized_figures(c, reference, conf)
            figures.update(
                rows=n,
                flag_rate=table.sums["flagged"][w, j] / n,
                estimated_cost_per_1000=1000.0 * table.sums["cost"][w, j] / n,
            )
            label = f"{table.column}={value}"
            out[label] = figures
            counts = released.get(value)
            if figures["labelled"] < config.min_labels or counts is None:
                continue
            highs = released_highs(counts, conf)
            figures["released_fpr_high"], figures["released_fnr_high"] = highs
            alerts += rate_alerts(key, figures, released_rates(counts), highs, config, label)
    return out, alerts
