"""The monitor over partitioned prediction logs, as Dask tasks: memory independent of the logs.

Each log file is one partition (a `.gz` cannot be split; a Parquet file is read row group by
row group): a task streams it block by block with the reader of monitoring.logs (its damage
rules unchanged) and reduces every block to a mergeable tally (monitoring.tally), so a task
holds one block and a tally, never the file. The tallies merge exactly (integer counts, exact
sums) into the figures monitoring.check computes for one in-memory frame: any number of
partitions and workers give the same summary.

Tasks run on the current Dask scheduler (dask.compute): in-process by default, or the cluster
that mlgitops.engine (or a test) made current. This module never creates one.

Passes: one, reading each partition once. Two when the check needs a fact of all rows before
tallying any: the time of the check (the last log time, when labels are given without
--as-of: labels after it do not count) or the `rows` windows' boundaries (every event time).

Ceilings (what still grows): the labels, deduplicated per key (one row per labelled id and
per request key), are read on the client and shipped to every worker; `rows` windows hold
every event time (8 bytes a row, plus the order keys) on the client; the label delays are
kept per distinct value (one int64 per labelled row at worst).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from mlgitops.config import MonitoringConfig
from mlgitops.errors import MonitoringInputError
from mlgitops.monitoring import tally as tally_mod
from mlgitops.monitoring.check import CheckResult, finish, needs_prescan, plan_check
from mlgitops.monitoring.logs import (
    LOG_SUFFIXES,
    PARQUET_SUFFIXES,
    ReadStats,
    expand,
    no_valid_lines,
    prediction_frames,
)
from mlgitops.monitoring.reference import ScoreReference
from mlgitops.profile import ReferenceProfile

MONITOR_SUFFIXES = LOG_SUFFIXES + PARQUET_SUFFIXES


@dataclass(frozen=True)
class PartitionResult:
    value: object  # a Tally or a Prescan
    stats: ReadStats
    rows: int  # valid prediction rows read (every model version)


def _prescan_partition(
    url: str, part: int, profile: ReferenceProfile, model_version: str | None, times: bool
) -> PartitionResult:
    stats = ReadStats(files=[url])
    out = tally_mod.Prescan()
    rows = 0
    for frame in prediction_frames(url, profile, stats):
        out.add(tally_mod.prescan_block(frame, model_version, part, rows, times))
        rows += len(frame)
    return PartitionResult(out, stats, rows)


def _tally_partition(url: str, part: int, plan: tally_mod.TallyPlan) -> PartitionResult:
    stats = ReadStats(files=[url])
    tallies = []
    rows = 0
    for frame in prediction_frames(url, plan.profile, stats):
        tallies.append(tally_mod.tally_block(frame, plan, part, rows))
        rows += len(frame)
        if len(tallies) >= 8:  # fold as it goes: a task holds a few tallies, not one per block
            tallies = [tally_mod.merge(tallies, plan.config.example_ids)]
    return PartitionResult(tally_mod.merge(tallies, plan.config.example_ids), stats, rows)


def _compute(tasks: list) -> list[PartitionResult]:
    import dask

    return list(dask.compute(*tasks)) if tasks else []


def check_logs(
    sources: Sequence[str],
    labels: pd.DataFrame | None,
    profile: ReferenceProfile,
    reference: ScoreReference,
    config: MonitoringConfig,
    model_version: str | None,
    stats: ReadStats,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> CheckResult:
    """The check of every prediction in `sources` (files, directories, URLs; JSON lines, gzip,
    Parquet), one Dask task per file. The logs' damage is added to `stats`. Raises
    MonitoringInputError when no file holds a valid prediction."""
    tally, plan, as_of = tally_logs(
        sources, labels, profile, reference, config, model_version, stats, as_of, progress
    )
    return finish(tally, plan, labels is not None, as_of, progress)


def tally_logs(
    sources: Sequence[str],
    labels: pd.DataFrame | None,
    profile: ReferenceProfile,
    reference: ScoreReference,
    config: MonitoringConfig,
    model_version: str | None,
    stats: ReadStats,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[tally_mod.Tally, tally_mod.TallyPlan, pd.Timestamp | None]:
    """The merged tally of every prediction in `sources`, the plan it was made by and the
    time of the check (None: the last log time, which the tally knows)."""
    import dask

    files = expand(sources, MONITOR_SUFFIXES)
    rows_windows = config.window == "rows"
    prescans: list[tally_mod.Prescan] = []
    if needs_prescan(config, labels is not None, as_of):
        progress(f"scanning {len(files)} log files")
        tasks = [
            dask.delayed(_prescan_partition, pure=True)(
                url, i, profile, model_version, rows_windows
            )
            for i, url in enumerate(files)
        ]
        prescans = [r.value for r in _compute(tasks)]  # type: ignore[misc]
    plan, as_of = plan_check(prescans, labels, profile, reference, config, model_version, as_of)
    progress(f"reading {len(files)} log files")
    shared = dask.delayed(plan, pure=True)  # one key: the labels are shipped once per worker
    results = _compute(
        [dask.delayed(_tally_partition, pure=True)(url, i, shared) for i, url in enumerate(files)]
    )
    for result in results:
        stats.absorb(result.stats)
    if sum(r.rows for r in results) == 0:
        raise MonitoringInputError(no_valid_lines(sources, stats))
    merged = tally_mod.merge([r.value for r in results], config.example_ids)  # type: ignore[misc]
    return merged, plan, as_of
