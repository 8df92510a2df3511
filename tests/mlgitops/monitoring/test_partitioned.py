"""`mlgitops monitor` over partitioned logs (monitoring.scan): one JSON-lines file, seven gzip
day partitions and hive-partitioned Parquet give the same summary, on Dask's in-process
scheduler and on a two-worker LocalCluster, and the counts the service exports."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from mlgitops import logline
from mlgitops.monitoring.batch import MonitorRequest, run_monitor
from mlgitops.monitoring.logs import ReadStats, read_labels
from mlgitops.monitoring.reference import load_score_reference
from mlgitops.monitoring.scan import tally_logs
from mlgitops.monitoring.tally import exact_totals
from mlgitops.profile import NumericProfile, bin_labels, load_profile, normalize_category
from mlgitops.serving.online import OnlineStats
from tests.mlgitops.monitoring.conftest import MODEL_VERSION

OTHER_VERSION = "fraud-detector:previous"


@dataclass(frozen=True)
class Layouts:
    single: Path  # one JSON-lines file
    gzip_days: Path  # a directory of seven day files, .jsonl.gz
    parquet: Path  # date=YYYY-MM-DD/part-0.parquet
    labels: Path
    lines: list[dict]


@pytest.fixture(scope="module")
def layouts(release, tmp_path_factory: pytest.TempPathFactory) -> Layouts:
    root = tmp_path_factory.mktemp("partitioned")
    log, labels = release.traffic(root, scenario="new_category", rows=4_000, days=7)
    lines = [orjson.loads(x) for x in log.read_bytes().splitlines() if x.strip()]
    # Some rows of an older release (counted apart) and some without their own event time
    # (left out of the windows): both merge across partitions too.
    for i, line in enumerate(lines):
        if i % 53 == 0:
            line["model_version"] = OTHER_VERSION
        if i % 97 == 0:
            line.pop("event_time")
    encoded = [orjson.dumps(line) for line in lines]
    single = root / "single.jsonl"
    single.write_bytes(b"\n".join(encoded) + b"\n")
    days: dict[str, list[bytes]] = defaultdict(list)
    for line, raw in zip(lines, encoded, strict=True):
        days[line["time"][:10]].append(raw)
    assert len(days) == 7
    gzip_days = root / "gzip-days"
    gzip_days.mkdir()
    for day, rows in days.items():
        (gzip_days / f"predictions-{day}.jsonl.gz").write_bytes(
            gzip.compress(b"\n".join(rows) + b"\n", mtime=0)
        )
    profile = load_profile(release.params.paths.profile)
    schema = logline.arrow_schema(
        (name, isinstance(spec, NumericProfile)) for name, spec in profile.features.items()
    )
    parquet = root / "parquet"
    for day, rows in days.items():
        table = pajson.read_json(
            pa.py_buffer(b"\n".join(rows) + b"\n"),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
        folder = parquet / f"date={day}"
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "part-0.parquet", row_group_size=300)
    return Layouts(single, gzip_days, parquet, labels, lines)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, one thread each; closed after the module's tests."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        Client(local) as client,
    ):
        yield client


def _summary(release, logs: Path, labels: Path | None, out: Path, **extra) -> tuple[dict, bytes]:
    request = MonitorRequest(
        [str(logs)],
        [str(labels)] if labels else [],
        MODEL_VERSION,
        summary_path=out / "summary.json",
        report_path=out / "report.html",
        **extra,
    )
    run_monitor(release.params, request)
    data = (out / "summary.json").read_bytes()
    return json.loads(data), data


def _without_file_count(summary: dict) -> dict:
    # The one figure that names the layout: how many files were read.
    return {**summary, "input": {**summary["input"], "log_files": None}}


@pytest.mark.parametrize("with_labels", [True, False], ids=["labels", "no-labels"])
def test_layouts_give_the_same_summary_in_process(
    release, layouts: Layouts, tmp_path: Path, with_labels: bool
) -> None:
    labels = layouts.labels if with_labels else None
    found = {}
    with dask.config.set(scheduler="sync"):
        for name in ("single", "gzip_days", "parquet"):
            out = tmp_path / name
            out.mkdir()
            found[name] = _summary(release, getattr(layouts, name), labels, out)
    single, _ = found["single"]
    assert single["status"] == "alert"
    assert single["rows"] > 3_000
    assert single["rows_without_event_time"] > 0
    assert single["other_model_versions"][OTHER_VERSION]["rows"] > 0
    new = [
        w["features"]["merchant_category"].get("new_categories") for w in single["windows"].values()
    ]
    assert any(n and n.get("bnpl", {}).get("examples") for n in new)
    if with_labels:
        assert single["labels_matched"] > 0
    assert found["gzip_days"][0]["input"]["log_files"] == 7
    assert found["parquet"][0]["input"]["log_files"] == 7
    for name in ("gzip_days", "parquet"):
        assert _without_file_count(found[name][0]) == _without_file_count(single), name


def test_rows_windows_are_the_same_over_partitions(
    release, layouts: Layouts, tmp_path: Path
) -> None:
    monitoring = release.params.monitoring.model_copy(update={"window": "rows", "window_rows": 700})
    params = release.params.model_copy(update={"monitoring": monitoring})
    found = []
    with dask.config.set(scheduler="sync"):
        for name in ("single", "gzip_days"):
            out = tmp_path / name
            out.mkdir()
            request = MonitorRequest(
                [str(getattr(layouts, name))],
                [str(layouts.labels)],
                MODEL_VERSION,
                summary_path=out / "summary.json",
                report_path=out / "report.html",
            )
            run_monitor(params, request)
            found.append(json.loads((out / "summary.json").read_text()))
    assert found[0]["windows_total"] == -(-found[0]["rows"] // 700)
    assert _without_file_count(found[0]) == _without_file_count(found[1])


def test_a_two_worker_cluster_writes_the_same_bytes(
    release, layouts: Layouts, tmp_path: Path, cluster
) -> None:
    with dask.config.set(scheduler="sync"):
        (tmp_path / "sync").mkdir()
        _, expected = _summary(release, layouts.gzip_days, layouts.labels, tmp_path / "sync")
    for name in ("gzip_days", "parquet"):
        out = tmp_path / name
        out.mkdir()
        # The client made in the fixture is the current scheduler: the tasks run on it.
        summary, data = _summary(release, getattr(layouts, name), layouts.labels, out)
        if name == "gzip_days":
            assert data == expected
        else:
            assert _without_file_count(summary) == _without_file_count(json.loads(expected))
    assert len(cluster.scheduler_info()["workers"]) == 2


def test_counts_equal_the_services_counters(release, layouts: Layouts) -> None:
    """The per-(feature, bin) rows, score bins and CBPE expected outcomes over partitioned
    logs equal what the service's counters (serving.online, exported on /metrics) add up for
    the same predictions."""
    profile = load_profile(release.params.paths.profile)
    reference = load_score_reference(release.params.paths.score_reference)
    config = release.params.monitoring
    labels = read_labels([str(layouts.labels)], profile.target, None, ReadStats())
    with dask.config.set(scheduler="sync"):
        tally, plan, _ = tally_logs(
            [str(layouts.gzip_days)], labels, profile, reference, config, None, ReadStats()
        )
    # model_version None: every row; windows by event time where logged (see check.select).
    rows = [line for line in layouts.lines if "event_time" in line]
    subset = tally.subsets[True]

    stats = OnlineStats(profile, reference)
    columns = []
    for name, spec in profile.features.items():
        values = [line["features"].get(name) for line in rows]
        if isinstance(spec, NumericProfile):
            columns.append([np.nan if v is None else float(v) for v in values])
        else:
            columns.append([normalize_category(v) for v in values])
    service_bins = {stats.series[slot]: count for slot, count in stats.feature_bins(columns)}
    names = [name for name, _ in plan.subjects]
    monitor_bins: dict[tuple[str, str], int] = defaultdict(int)
    for cell in subset.bins.itertuples(index=False):
        name = names[int(cell.subject)]
        if name in profile.features:
            label = bin_labels(profile.features[name])[int(cell.bin)]
            monitor_bins[(name, label)] += int(cell.rows)
    assert dict(monitor_bins) == service_bins

    scores = [float(line["score"]) for line in rows]
    score_labels = bin_labels(reference.score)
    monitor_scores: dict[str, int] = defaultdict(int)
    for cell in subset.bins[subset.bins["subject"] == len(names) - 1].itertuples(index=False):
        monitor_scores[score_labels[int(cell.bin)]] += int(cell.rows)
    assert dict(monitor_scores) == dict(stats.score_bins(scores))

    flags = [int(s >= reference.threshold) for s in scores]
    service_expected = stats.expected(scores, flags)
    for outcome, value in service_expected.items():
        pieces = subset.expected[subset.expected["outcome"] == outcome]
        monitor = sum(exact_totals(pieces, ["window"]).values())
        assert monitor == pytest.approx(value, rel=1e-12), outcome
    assert int(subset.windows["rows"].sum()) == len(rows)
