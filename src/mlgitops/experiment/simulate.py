"""A synthetic experiment: prediction-log lines as a service running one would write, and the
labels that arrive later. The tests' and docs/ab.md's input; deterministic for a seed.

Each row is a transaction whose arm comes from the real assignment (`assign`); its fraud label,
and the alert of the model of its arm, are drawn from that model's recall and false-positive
rate. In shadow mode every row carries the challenger's decision too (both models' errors
drawn from one shared uniform per row, so they are as correlated as two similar models').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd

from mlgitops.experiment.assign import CHALLENGER, CHAMPION, bucket
from mlgitops.logline import ExperimentFields, prediction_line

START = pd.Timestamp("2025-07-01T00:00:00Z")


@dataclass(frozen=True)
class Arm:
    recall: float = 0.8
    false_positive_rate: float = 0.02
    version: str = "fraud-detector:champion"


@dataclass(frozen=True)
class Simulation:
    rows: int = 20_000
    days: float = 14.0
    fraud_rate: float = 0.023
    share: float = 0.5
    salt: str = "mlgitops"
    mode: str = "ab"
    champion: Arm = Arm()
    challenger: Arm = Arm(version="fraud-detector:challenger")
    # Share of the challenger's log lines lost (a broken sidecar, a crashing arm): an SRM.
    challenger_lost: float = 0.0
    label_delay_hours: tuple[float, float] = (24.0, 72.0)
    seed: int = 0


def simulate(config: Simulation) -> tuple[list[bytes], pd.DataFrame]:
    """Log lines (one per row, in time order) and labels (id, label, label_time)."""
    rng = np.random.default_rng(config.seed)
    n = config.rows
    ids = [f"tx_{config.seed}_{i:08d}" for i in range(n)]
    seconds = np.sort(rng.random(n)) * config.days * 86400.0
    event = START + pd.to_timedelta(seconds, unit="s")
    if config.mode == "shadow":
        challenger = np.zeros(n, dtype=bool)
    else:
        challenger = np.array([bucket(config.salt, i) < config.share for i in ids])
    fraud = rng.random(n) < config.fraud_rate
    shared = rng.random(n)

    def alerts(arm: Arm) -> np.ndarray:
        return np.where(fraud, shared < arm.recall, shared > 1.0 - arm.false_positive_rate)

    champion_alert, challenger_alert = alerts(config.champion), alerts(config.challenger)
    kept = ~(challenger & (rng.random(n) < config.challenger_lost))
    times = event.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    shadow = config.mode == "shadow"
    lines = []
    for i in np.flatnonzero(kept):
        is_b = bool(challenger[i])
        alert = bool(challenger_alert[i] if is_b else champion_alert[i])
        line = prediction_line(
            id=ids[i],
            event_time=times[i],
            request_id=f"sim-{i:x}",
            row=0,
            time=times[i],
            model_version=config.challenger.version if is_b else config.champion.version,
            features={},
            score=0.9 if alert else 0.1,
            label=int(alert),
            experiment=ExperimentFields(
                arm=CHALLENGER if is_b else CHAMPION,
                champion_version=config.champion.version,
                challenger_version=config.challenger.version,
                challenger_score=(0.9 if challenger_alert[i] else 0.1) if shadow else None,
                challenger_label=int(challenger_alert[i]) if shadow else None,
            ),
        )
        lines.append(orjson.dumps(line))
    low, high = config.label_delay_hours
    delay = pd.to_timedelta(low + (high - low) * rng.random(n), unit="h")
    labels = pd.DataFrame(
        {
            "id": ids,
            "label": fraud.astype(int),
            "label_time": (event + delay).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    return lines, labels
