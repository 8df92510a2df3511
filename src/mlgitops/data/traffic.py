"""Traffic to watch: a later period of the data generator (mlgitops.data.generate) under a
scenario, scored by the model, as prediction-log lines and a labels file, exactly as the service
and the labelling team would write them. Used by `mlgitops data simulate`, the monitor's demo,
tests and benchmark; deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlgitops.data.generate import (
    DEFAULT_DAYS,
    DEFAULT_ROWS,
    DEFAULT_SEED,
    DEFAULT_START,
    GeneratorConfig,
    generate_csv_text,
)
from mlgitops.data.prepare import model_frame
from mlgitops.io import atomic_write, atomic_write_text
from mlgitops.logline import prediction_line
from mlgitops.schema import TrainingSchema

# Hours until a label arrives: normally one to three days; under "label_delay" three to six
# weeks, and a third never arrives.
LABEL_DELAY_HOURS = {"default": (24, 72), "label_delay": (21 * 24, 42 * 24)}
LOST_LABEL_SHARE = {"label_delay": 1 / 3}
BATCH = 8  # rows per logged request, as a client batching a few transactions would send


@dataclass(frozen=True)
class TrafficConfig:
    scenario: str = "none"
    rows: int = 14_000
    days: int = 14
    seed: int = DEFAULT_SEED + 1
    model_version: str = "fraud-detector:simulated"


def later_period(config: TrafficConfig) -> GeneratorConfig:
    """The period right after the default data, with ids that continue after its ids."""
    return GeneratorConfig(
        rows=config.rows,
        seed=config.seed,
        start=DEFAULT_START + timedelta(days=DEFAULT_DAYS),
        days=config.days,
        scenario=config.scenario,
        first_id=DEFAULT_ROWS + 1,
    )


def generate_table(config: TrafficConfig) -> pd.DataFrame:
    """The scenario's rows, read the way the pipeline reads its CSV (empty = missing)."""
    import io

    import pyarrow.csv as pacsv

    text = generate_csv_text(later_period(config)).encode()
    options = pacsv.ConvertOptions(strings_can_be_null=True)
    return pacsv.read_csv(io.BytesIO(text), convert_options=options).to_pandas()


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value


def traffic(
    table: pd.DataFrame,
    pipeline: Any,
    schema: TrainingSchema,
    threshold: float,
    config: TrafficConfig,
) -> tuple[list[bytes], pd.DataFrame]:
    """Prediction-log lines (new format: with `id` and `event_time`) and labels (id, label,
    label_time) for `table`, scored in-process by `pipeline`."""
    features = model_frame(table, schema, "traffic")
    scores = pipeline.predict_proba(features[schema.feature_names])[:, 1]
    labels = (scores >= threshold).astype(int)
    event = pd.to_datetime(table[schema.time_column or "timestamp"], utc=True)
    times = event.dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    ids = table["transaction_id"].astype(str).tolist()
    records = features[schema.feature_names].astype(object).where(features.notna(), None)
    rows = records.to_dict(orient="records")
    lines = [
        orjson.dumps(
            prediction_line(
                id=ids[i],
                event_time=times[i],
                request_id=f"sim-{i // BATCH:x}",
                row=i % BATCH,
                time=times[i],
                model_version=config.model_version,
                features={k: _jsonable(v) for k, v in record.items()},
                score=float(score),
                label=int(label),
            )
        )
        for i, (record, score, label) in enumerate(zip(rows, scores, labels, strict=True))
    ]
    rng = random.Random(config.seed)
    low, high = LABEL_DELAY_HOURS.get(config.scenario, LABEL_DELAY_HOURS["default"])
    lost = LOST_LABEL_SHARE.get(config.scenario, 0.0)
    delays, keep = [], []
    for _ in range(len(table)):
        delays.append(low + (high - low) * rng.random())
        keep.append(rng.random() >= lost)
    label_time = event + pd.to_timedelta(np.asarray(delays), unit="h")
    truth = pd.DataFrame(
        {
            "id": ids,
            "label": table[schema.target].astype(int).to_numpy(),
            "label_time": label_time.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    return lines, truth[np.asarray(keep)].reset_index(drop=True)


def write_traffic(lines: list[bytes], labels: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    log = Path(out_dir) / "predictions.jsonl"
    labels_file = Path(out_dir) / "labels.csv"
    atomic_write(log, lambda tmp: tmp.write_bytes(b"\n".join(lines) + b"\n"))
    atomic_write_text(labels_file, labels.to_csv(index=False, lineterminator="\n"))
    return log, labels_file
