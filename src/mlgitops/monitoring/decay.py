"""Slow decay in `mlgitops monitor`: CUSUM of the standardised per-window cost.

Two streams, label-free (expected cost from the scores) and realized (from the labels). The
reference is itself an estimate, so a small fixed offset would accumulate forever: a stream
alarms only when its CUSUM is past `cusum_h` and the pooled cost of the trailing
`slow_windows` windows also exceeds the reference materially and beyond sampling error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlgitops.config import MonitoringConfig
from mlgitops.monitoring import drift_stats
from mlgitops.monitoring.alerts import Alert, slow_decay_alert


@dataclass(frozen=True)
class CostStream:
    name: str  # "expected_cost" or "realized_cost"
    z: list[float]  # standardised cost per window (NaN: not judged)
    cost: np.ndarray  # total cost per window
    count: np.ndarray  # rows the cost is over, per window
    base: float  # the reference's cost per row
    sd: float  # the reference's standard deviation of one row's cost


def cusum_figures(
    streams: tuple[CostStream, ...],
    keys: list[str],
    n_reference: int,
    z_conf: float,
    config: MonitoringConfig,
) -> tuple[list[dict[str, float]], list[Alert]]:
    """Per window, each stream's CUSUM level and the trailing windows' pooled excess cost (as a
    share and as a z); the slow-decay alerts."""
    figures: list[dict[str, float]] = [{} for _ in keys]
    alerts = []
    for stream in streams:
        name, base, sd = stream.name, stream.base, stream.sd
        levels = drift_stats.cusum(np.asarray(stream.z, dtype=float), config.cusum_k)
        for w, key in enumerate(keys):
            first = max(0, w - config.slow_windows + 1)
            n_pooled = float(stream.count[first : w + 1].sum())
            pooled = float(stream.cost[first : w + 1].sum()) / n_pooled if n_pooled else math.nan
            spread = sd * math.sqrt(1.0 / max(n_pooled, 1.0) + 1.0 / n_reference)
            pooled_z = (pooled - base) / spread if n_pooled else math.nan
            record = figures[w]
            record[name] = float(levels[w])
            record[f"{name}_pooled_excess"] = pooled / base - 1.0 if base else math.nan
            record[f"{name}_pooled_z"] = pooled_z
            material = n_pooled > 0 and pooled > base * (1.0 + config.slow_min_cost_increase)
            if levels[w] >= config.cusum_h and material and pooled_z > z_conf:
                excess = pooled / base - 1.0
                alerts.append(
                    slow_decay_alert(key, name, float(levels[w]), w - first + 1, excess, config)
                )
    return figures, alerts
