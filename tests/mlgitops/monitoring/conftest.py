"""A small trained release (model, profile, score reference) shared by the monitoring tests."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlgitops.config import Params, load_params
from mlgitops.data.generate import GeneratorConfig, write_dataset
from mlgitops.data.traffic import TrafficConfig, generate_table, traffic, write_traffic
from mlgitops.io import load_pipeline, read_json
from mlgitops.schema import load_schema
from tests.support.project import raw_params

MODEL_VERSION = "fraud-detector:test"


@dataclass(frozen=True)
class Release:
    params: Params
    params_file: Path
    root: Path

    def traffic(self, out: Path, **config) -> tuple[Path, Path]:
        settings = TrafficConfig(model_version=MODEL_VERSION, **config)
        lines, labels = traffic(
            generate_table(settings),
            load_pipeline(self.params.paths.model),
            load_schema(self.params.paths.schema_file),
            float(read_json(self.params.paths.metrics)["threshold"]),
            settings,
        )
        return write_traffic(lines, labels, out)


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    root = tmp_path_factory.mktemp("release")
    raw = raw_params()
    raw["paths"] = {key: str(root / value) for key, value in raw["paths"].items()}
    raw["data"]["path"] = str(root / "data" / "transactions.csv")
    raw["train"]["hist_gradient_boosting"]["max_iter"] = 60
    # Stages called one by one fit params.yaml's train config, not a tuned one.
    raw["tune"]["enabled"] = False
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(params_file)
    write_dataset(params.data.path, GeneratorConfig(rows=20_000, seed=7))
    for stage in ("validate", "split", "train", "evaluate", "score_reference"):
        importlib.import_module(f"mlgitops.stages.{stage}").run(params)
    (root / "release.json").write_text(json.dumps({"model_tag": MODEL_VERSION}) + "\n")
    return Release(params, params_file, root)
