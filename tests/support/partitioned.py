"""The default data as pandas and as Dask frames of any partitioning, and a bounded LocalCluster,
for tests that prove per-partition work gives the single-process bytes."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask.dataframe as dd
import pandas as pd

from mlgitops.config import Params, load_params
from mlgitops.data.generate import GeneratorConfig, write_dataset
from mlgitops.data.table import read_table
from tests.support.project import REPO_ROOT

PARTITION_COUNTS = (1, 3, 7)


def repo_params() -> Params:
    return load_params(REPO_ROOT / "params.yaml")


@functools.cache
def default_table() -> pd.DataFrame:
    """The default dataset (the generator's, as `mlgitops data materialize` writes it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transactions.csv"
        write_dataset(path, GeneratorConfig())
        return read_table(path, "csv")


def as_dask(frame: pd.DataFrame, partitions: int) -> dd.DataFrame:
    # Dask's default dtypes (strings become Arrow strings), as a Parquet dataset would give.
    return dd.from_pandas(frame, npartitions=partitions)


@contextmanager
def local_cluster(workers: int = 2) -> Iterator[None]:
    """A LocalCluster of `workers` single-threaded in-process workers, closed on exit."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
            # The scheduler's HTTP routes still start: on a free loopback port, not on :8787.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster),
    ):
        yield
