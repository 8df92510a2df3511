"""A small audited project: params.yaml, a release, a profile and a prediction log of a
synthetic population with known truth; no model is trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlgitops.config import Params, load_params
from mlgitops.io import save_model_json
from mlgitops.release import ReleaseRecord
from tests.support import audit
from tests.support.project import raw_params

THRESHOLD = 0.04
MODEL_VERSION = "fraud-detector:audit-test"


@dataclass(frozen=True)
class Project:
    root: Path
    params_file: Path
    params: Params
    log: Path
    people: audit.Population

    @property
    def truth(self) -> dict[str, int]:
        return dict(zip(self.people.ids, self.people.truth.tolist(), strict=True))


def release_record() -> ReleaseRecord:
    return ReleaseRecord(
        bento_name="fraud-detector",
        bento_version="audit-test",
        model_tag=MODEL_VERSION,
        model_hash="sha256:0",
        data_hash="md5:0",
        params_hash="sha256:0",
        image="registry.example.com/fraud-detector:audit-test",
        threshold=THRESHOLD,
        threshold_policy="fixed",
        metrics={"precision": 0.1, "fpr": 0.09, "fnr": 0.4},
        mlgitops_version="0.1.0",
    )


def make_project(root: Path, rows: int = 6000, seed: int = 1, sample_size: int = 300) -> Project:
    raw = raw_params()
    raw["paths"] = {key: str(root / value) for key, value in raw["paths"].items()}
    raw["audit"]["sample_size"] = sample_size
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(params_file)
    save_model_json(release_record(), params.paths.release)
    save_model_json(audit.profile(), params.paths.profile)
    people = audit.population(rows, seed)
    log = root / "logs" / "predictions.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("\n".join(audit.log_lines(people, THRESHOLD, MODEL_VERSION)) + "\n")
    return Project(root, params_file, params, log, people)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)
