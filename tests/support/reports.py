"""Fixtures for the report tests: a small project evaluated, with a stand-in release record."""

from __future__ import annotations

import pytest

from mlgitops.config import Params
from mlgitops.records import load_metrics
from mlgitops.release import ReleaseRecord, write_release
from mlgitops.stages import evaluate, gate, report, split, train, validate
from tests.support.project import params_in, write_small_dataset


def fake_release(params: Params, bento_version: str = "0123456789ab") -> ReleaseRecord:
    """The release record package would write, without building a bento."""
    metrics = load_metrics(params.paths.metrics)
    return ReleaseRecord(
        bento_name="fraud-detector",
        bento_version=bento_version,
        model_tag=f"fraud-detector:{bento_version}",
        model_hash="sha256:" + "a" * 64,
        data_hash="md5:" + "b" * 32,
        params_hash="sha256:" + "c" * 64,
        image=f"registry.example.com/fraud-detector:{bento_version}",
        threshold=metrics.threshold,
        threshold_policy=metrics.threshold_policy,
        metrics={"roc_auc": metrics.roc_auc},
        mlgitops_version="0.1.0",
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Params:
    """A small project through evaluate and the gate (off: PASS), with a release record:
    what `report` reads."""
    root = tmp_path_factory.mktemp("report")
    params = params_in(root)
    write_small_dataset(params.data.path)
    for stage in (validate, split, train, evaluate, gate):
        stage.run(params)
    write_release(fake_release(params), params.paths.release, params.paths.k8s_release_patch)
    return params


@pytest.fixture(scope="module")
def reported(evaluated: Params) -> Params:
    report.run(evaluated)
    return evaluated
