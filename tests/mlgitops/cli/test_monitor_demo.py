"""`mlgitops monitor-demo`: a scenario through the real service, then the batch monitor."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from mlgitops.cli.monitor_demo import demo_labels, scenario_records
from mlgitops.config import load_params
from mlgitops.data.traffic import TrafficConfig, generate_table
from tests.support.project import REPO_ROOT, run


def test_records_carry_every_column_but_the_target_as_json_values() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    table = generate_table(TrafficConfig(scenario="broken_feature", rows=50, days=1))
    records = scenario_records(table, params.data.target)
    assert set(records[0]) == set(table.columns) - {params.data.target}
    assert all(r["distance_from_home_km"] is None for r in records)
    json.dumps(records)  # plain JSON: no numpy scalars, no NaN
    labels = demo_labels(table, params)
    assert labels["id"].tolist() == table[params.id_column].astype(str).tolist()
    assert (pd.to_datetime(labels["label_time"]) > pd.to_datetime(table["timestamp"])).all()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_broken_feature_replayed_through_the_service_raises_its_alert(tmp_path) -> None:
    release = json.loads((REPO_ROOT / "release.json").read_text())
    if not (REPO_ROOT / "artifacts/bento/bento.tar").is_file():
        pytest.skip("no bento archive (run `dvc repro` or `dvc pull`)")
    out = tmp_path / "demo"
    # A fresh BentoML home: the demo imports the commit's archive as `mlgitops serve` would.
    env = {"BENTOML_HOME": str(tmp_path / "bentoml")}
    cmd = [sys.executable, "-m", "mlgitops", "monitor-demo", "--rows", "1500", "--days", "3"]
    result = run([*cmd, "--out", str(out)], REPO_ROOT, env=env)
    assert "1500 rows through the service" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_version"] == release["model_tag"]
    missing = [a for a in summary["alerts"] if a["subject"] == "distance_from_home_km"]
    assert missing, summary["alerts_by_kind"]
    assert "distance_from_home_km" in result.stdout
    line = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert line["id"].startswith("tx_")
    assert line["event_time"]
