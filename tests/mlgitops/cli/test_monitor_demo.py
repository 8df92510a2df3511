"""`mlgitops monitor-demo`: a scenario through the real service, then the batch monitor."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlgitops.config import load_params
from mlgitops.data.traffic import TrafficConfig, generate_table
from mlgitops.io import save_model_json
from mlgitops.monitor_demo import demo_labels, scenario_records
from mlgitops.monitoring.summary import MonitorSummary
from tests.mlgitops.serving.conftest import (  # noqa: F401  (fixtures)
    Packaged,
    bentoml_home,
    dev_artifacts,
    packaged,
)
from tests.support.project import REPO_ROOT, raw_params, run


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


@pytest.fixture
def demo_project(packaged: Packaged, tmp_path: Path) -> Path:  # noqa: F811
    """A params.yaml whose release is the stand-in bento built into the test's BentoML store,
    with that model's profile and score reference: what `dvc repro` leaves, without it."""
    root = tmp_path / "project"
    root.mkdir()
    raw = raw_params()
    raw["paths"] = {key: str(root / value) for key, value in raw["paths"].items()}
    raw["paths"]["profile"] = str(packaged.artifacts.profile_file)
    raw["paths"]["score_reference"] = str(packaged.artifacts.score_reference_file)
    save_model_json(packaged.release, Path(raw["paths"]["release"]))
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    return params_file


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_broken_feature_replayed_through_the_service_raises_its_alert(
    demo_project: Path,
    packaged: Packaged,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    # The store the fixture built the bento into, as `mlgitops serve` would find it.
    env = {"BENTOML_HOME": str(packaged.home)}
    cmd = [sys.executable, "-m", "mlgitops", "monitor-demo", "--rows", "1500", "--days", "3"]
    cmd += ["--params", str(demo_project), "--out", str(out)]
    result = run(cmd, demo_project.parent, env=env)
    assert "1500 rows through the service" in result.stdout
    summary = MonitorSummary.model_validate_json((out / "summary.json").read_text())
    assert summary.model_version == packaged.release.model_tag
    missing = [a for a in summary.alerts if a.subject == "distance_from_home_km"]
    assert missing, summary.alerts_by_kind
    assert "distance_from_home_km" in result.stdout
    line = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert line["id"].startswith("tx_")
    assert line["event_time"]
