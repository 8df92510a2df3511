"""Simulated traffic (mlgitops.data.traffic): the service's log lines and the labelling team's
labels for a later period of the generator, joined back by the monitor's own reader and join."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from mlgitops.data.generate import DEFAULT_ROWS
from mlgitops.data.traffic import TrafficConfig, generate_table, traffic, write_traffic
from mlgitops.monitoring.labeljoin import join_labels
from mlgitops.monitoring.logs import KEY, ReadStats, read_labels, read_predictions
from mlgitops.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlgitops.schema import FeatureSpec, TrainingSchema

NUMERIC = ("amount", "hour", "account_age_days", "customer_age", "distance_from_home_km")
NUMERIC += ("transactions_last_24h", "avg_amount_30d")
CATEGORICAL = ("merchant_category", "country", "channel", "card_type", "device_os")
SCHEMA = TrainingSchema(
    target="is_fraud",
    positive_class="1",
    time_column="timestamp",
    features=tuple(
        [FeatureSpec(name=n, kind="numeric", source="declared") for n in NUMERIC]
        + [FeatureSpec(name=n, kind="categorical", source="declared") for n in CATEGORICAL]
    ),
    dropped_columns=("transaction_id",),
    id_column="transaction_id",
)


class _Amounts:
    """A stand-in model: the score rises with the amount (deterministic, no training)."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        score = 1.0 - 1.0 / (1.0 + frame["amount"].fillna(0.0).to_numpy() / 500.0)
        return np.column_stack([1.0 - score, score])


def _profile() -> ReferenceProfile:
    numeric = {n: NumericProfile.model_construct(missing_rate=0.0) for n in NUMERIC}
    categorical = {n: CategoricalProfile.model_construct(missing_rate=0.0) for n in CATEGORICAL}
    return ReferenceProfile.model_construct(features={**numeric, **categorical})


def test_traffic_reads_back_and_every_kept_label_joins_its_prediction(tmp_path: Path) -> None:
    config = TrafficConfig(scenario="label_delay", rows=400, days=2)
    table = generate_table(config)
    lines, labels = traffic(table, _Amounts(), SCHEMA, 0.5, config)
    assert traffic(generate_table(config), _Amounts(), SCHEMA, 0.5, config)[0] == lines

    first = orjson.loads(lines[0])
    assert list(first) == [
        "id", "event_time", "request_id", "row", "time", "model_version", "features", "score",
        "label",
    ]  # fmt: skip
    assert first["id"] == f"tx_{DEFAULT_ROWS + 1:08d}"  # ids continue after the default data's
    assert (first["request_id"], first["row"]) == ("sim-0", 0)
    # A third of the labels never arrive under label_delay; the rest come weeks later.
    assert 0.55 < len(labels) / len(lines) < 0.8
    delay = pd.to_datetime(labels["label_time"]) - pd.to_datetime(table["timestamp"][0])
    assert delay.min() >= pd.Timedelta(days=21)

    log, labels_file = write_traffic(lines, labels, tmp_path)
    stats = ReadStats()
    predictions = read_predictions([str(log)], _profile(), stats)
    given = read_labels([str(labels_file)], "is_fraud", "transaction_id", ReadStats())
    assert (len(predictions), stats.malformed) == (len(lines), 0)
    join = join_labels(predictions, given, on_conflict="refuse")
    assert join.known.all()
    truth = dict(zip(labels["id"], labels["label"], strict=True))
    got = dict(zip(predictions[KEY], join.truth, strict=True))
    assert {key: got[key] for key in truth} == {key: float(v) for key, v in truth.items()}
