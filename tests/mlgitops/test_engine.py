"""The engine: in-process, a LocalCluster or a scheduler from the environment; a partition that
fails and a worker that dies stop the work with one line naming the partition."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import dask.dataframe as dd
import pandas as pd
import pytest

from mlgitops.config import EngineConfig
from mlgitops.data.dataset import open_dataset
from mlgitops.data.generate_fast import BulkConfig, write_parquet_dataset
from mlgitops.engine import compute, named_partitions, running
from mlgitops.errors import ConfigError, DataError, EngineError, PartitionError
from tests.mlgitops.data.test_dataset import _data

pytestmark = pytest.mark.timeout(180)


class Terminal:
    """A stream that says it is a terminal, and keeps what was written."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.fixture
def dataset(tmp_path) -> Path:
    out = tmp_path / "big"
    write_parquet_dataset(out, BulkConfig(rows=8000, partitions=4, seed=3))
    return out


def _fraud_count(path: Path) -> int:
    return int(open_dataset(_data(path))["is_fraud"].sum().compute())


def test_environment_overrides_kind_and_size():
    base = EngineConfig()
    assert base.with_environment({}) == base
    assert base.with_environment({"MLGITOPS_ENGINE": "cluster:3"}).workers == 3
    assert base.with_environment({"MLGITOPS_ENGINE": "cluster:3"}).kind == "cluster"
    assert base.with_environment({"MLGITOPS_ENGINE": "local:2"}).threads == 2
    assert base.with_environment({"MLGITOPS_ENGINE": "scheduler"}).kind == "scheduler"
    for bad in ("k8s", "cluster:0", "cluster:x", "scheduler:2"):
        with pytest.raises(ConfigError, match=rf"^environment variable MLGITOPS_ENGINE={bad!r}"):
            base.with_environment({"MLGITOPS_ENGINE": bad})


def test_engine_params_are_validated():
    with pytest.raises(ValueError, match="kind"):
        EngineConfig(kind="k8s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a size"):
        EngineConfig(worker_memory="lots")
    assert EngineConfig(worker_memory="2GiB").worker_memory == "2GiB"


@pytest.mark.parametrize("threads", [1, 2])
def test_in_process_gives_the_same_result(dataset, threads):
    with dask.config.set(scheduler="sync"):
        expected = _fraud_count(dataset)
    with running(EngineConfig(threads=threads), environ={}) as state:
        assert state.client is None
        assert _fraud_count(dataset) == expected
        assert dask.config.get("scheduler") == ("sync" if threads == 1 else "threads")


def test_a_local_cluster_gives_the_same_result_and_is_torn_down(dataset):
    with dask.config.set(scheduler="sync"):
        expected = _fraud_count(dataset)
    with running(EngineConfig(kind="cluster", workers=2), environ={}) as state:
        assert state.client is not None
        assert state.address.startswith("tcp://127.0.0.1:")
        assert len(state.client.scheduler_info()["workers"]) == 2
        assert _fraud_count(dataset) == expected
        client = state.client
    assert client.status == "closed"


def test_a_scheduler_comes_from_the_environment_only(dataset):
    from distributed import LocalCluster

    unset = pytest.raises(ConfigError, match="MLGITOPS_DASK_SCHEDULER is unset")
    with unset, running(EngineConfig(kind="scheduler"), environ={}):
        pass
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        running(
            EngineConfig(),
            environ={
                "MLGITOPS_ENGINE": "scheduler",
                "MLGITOPS_DASK_SCHEDULER": cluster.scheduler_address,
            },
        ) as state,
    ):
        assert state.describe() == f"scheduler at {cluster.scheduler_address}"
        assert _fraud_count(dataset) > 0


def test_an_unreachable_scheduler_is_one_line():
    environ = {"MLGITOPS_ENGINE": "scheduler", "MLGITOPS_DASK_SCHEDULER": "tcp://127.0.0.1:9"}
    refused = pytest.raises(EngineError, match=r"^MLGITOPS_DASK_SCHEDULER=tcp://127.0.0.1:9: sch")
    with refused, running(EngineConfig(), environ=environ, connect_timeout_s=2):
        pass


def test_a_bad_file_on_a_worker_stops_naming_the_file(dataset):
    victim = sorted(dataset.iterdir())[2]
    victim.write_bytes(b"PAR1 not really")
    named = pytest.raises(DataError, match=rf"^{victim}: not a readable Parquet file")
    with running(EngineConfig(kind="cluster", workers=2), environ={}), named:
        _fraud_count(dataset)


def _fails_on_partition_two(part: pd.DataFrame) -> pd.DataFrame:
    if part["transaction_id"].iloc[0] == "tx_00004001":
        raise ZeroDivisionError("division by zero\nsecond line")
    return part


def test_a_partition_that_raises_is_named(dataset):
    frame = open_dataset(_data(dataset))
    failing = frame.map_partitions(named_partitions(_fails_on_partition_two, "score"))
    named = pytest.raises(
        PartitionError, match=r"^score: partition 2: ZeroDivisionError: division by zero$"
    )
    with running(EngineConfig(kind="cluster", workers=2), environ={}), named:
        failing.compute()


def _die_once(part: pd.DataFrame, marker: str, always: bool) -> pd.DataFrame:
    if part["transaction_id"].iloc[0] == "tx_00002001" and (always or not Path(marker).exists()):
        Path(marker).touch()
        os._exit(1)  # the worker process dies mid-task
    return part[["is_fraud"]]


def test_a_worker_that_dies_once_is_retried(dataset, tmp_path):
    frame = open_dataset(_data(dataset))
    with dask.config.set(scheduler="sync"):
        expected = _fraud_count(dataset)
    marker = str(tmp_path / "died")
    work = frame.map_partitions(_die_once, marker, False, meta={"is_fraud": "int64"})
    with running(EngineConfig(kind="cluster", workers=2, allowed_failures=1), environ={}):
        assert int(work["is_fraud"].sum().compute()) == expected
    assert Path(marker).exists()


def test_a_worker_that_keeps_dying_stops_the_work_naming_the_partition(dataset, tmp_path):
    frame = open_dataset(_data(dataset))
    work = frame.map_partitions(_die_once, str(tmp_path / "died"), True, meta={"is_fraud": "int64"})
    # Tasks beside the culprit on a dying worker count too: Dask may give up on either first.
    died = r"^partition \d of \S+: its worker died 2 times \(last tcp://127\.0\.0\.1:\d+\); Dask"
    named = pytest.raises(PartitionError, match=died)
    with named, running(EngineConfig(kind="cluster", workers=2, allowed_failures=1), environ={}):
        work["is_fraud"].sum().compute()


def test_progress_shows_on_a_terminal_only(dataset, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    frame = open_dataset(_data(dataset))
    terminal = Terminal()
    with running(EngineConfig(), environ={}):
        (total,) = compute(frame["is_fraud"].sum(), label="count", stream=terminal)
    assert "count: " in terminal.text
    assert "tasks" in terminal.text
    assert terminal.text.endswith("\r")  # the line is cleared at the end
    monkeypatch.setenv("CI", "true")
    quiet = Terminal()
    with running(EngineConfig(), environ={}):
        assert compute(frame["is_fraud"].sum(), stream=quiet) == (total,)
    assert quiet.text == ""


def test_progress_on_a_cluster(dataset, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    frame = dd.from_pandas(pd.DataFrame({"x": range(100)}), npartitions=4)
    terminal = Terminal()
    with running(EngineConfig(kind="cluster", workers=2), environ={}):
        assert compute(frame["x"].sum(), label="sum", stream=terminal) == (4950,)
    assert "sum: " in terminal.text


def test_params_yaml_engine_section_is_validated(tmp_path):
    import yaml

    from mlgitops.config import load_params
    from tests.support.project import REPO_ROOT

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert load_params(REPO_ROOT / "params.yaml").engine == EngineConfig()
    raw["engine"] = {"kind": "cluster", "wokers": 2}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="engine.wokers"):
        load_params(path)
