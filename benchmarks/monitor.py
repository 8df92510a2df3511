"""Benchmark: monitoring 1M logged predictions against the training reference.

(a) Drift of the same in-memory table, each in a fresh process (wall time, peak RSS growth):
    mlgitops (monitoring.check on the profile's bins: drift, tests, performance, segments),
    Evidently's DataDriftPreset (0.7.23, in a venv this script creates, never a project
    dependency) against the training split, and a plain scipy loop (ks_2samp / chi2_contingency
    on raw values against the training split).
(b) `mlgitops monitor` end to end from JSON-lines files (parse, join labels, check, write).
(c) False alarms over 200 unchanged days, and detection delay per scenario: the earliest time
    after the change at which a run of the check raises the scenario's alert.

(d) `--partitioned`: instead of (a)-(c), `mlgitops monitor` over the same logged predictions
    written as one JSON-lines file and as gzip JSON lines partitioned by day, in-process and on
    a two-worker LocalCluster: seconds and the peak RSS of all processes together (the monitor
    and its workers, sampled every 50 ms), and whether every layout gives the same summary.
    The traffic is a generated base (--base-rows) repeated with new ids up to --rows, so the
    generator's own memory does not cap the size.

Needs the trained release of this checkout (`make run`). The last line holds key=value figures.

    python benchmarks/monitor.py [--rows 1000000] [--skip-evidently]
    python benchmarks/monitor.py --partitioned --rows 3000000 [--base-rows 200000] [--labels]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EVIDENTLY_VENV = Path(tempfile.gettempdir()) / "mlgitops-evidently-venv"
EVIDENTLY_REQUIREMENTS = ("evidently==0.7.23", "pandas<3")
TARGET_SPEEDUP = 20.0
TARGET_END_TO_END_S = 10.0

# Each worker: read the table, note RSS, compute, print seconds and peak RSS growth (MiB).
# Peak RSS of the computation alone: the kernel's high-water mark is reset after loading
# (writing 5 to /proc/self/clear_refs), then read back (VmHWM) minus the RSS before.
_RSS = (
    "def _status(key):\n"
    "    with open('/proc/self/status') as f:\n"
    "        for line in f:\n"
    "            if line.startswith(key):\n"
    "                return int(line.split()[1]) / 1024\n"
    "def rss_mib():\n"
    "    with open('/proc/self/clear_refs', 'w') as f:\n"
    "        f.write('5')\n"
    "    return _status('VmRSS')\n"
    "def peak_mib():\n"
    "    return _status('VmHWM')\n"
)
EVIDENTLY_WORKER = (
    _RSS
    + """
import json, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
spec = json.loads(sys.argv[1])
cur = pd.read_parquet(spec["current"], columns=spec["numeric"] + spec["categorical"])
ref = pd.read_parquet(spec["reference"], columns=spec["numeric"] + spec["categorical"])
definition = DataDefinition(
    numerical_columns=spec["numeric"], categorical_columns=spec["categorical"]
)
before = rss_mib()
start = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(
    Dataset.from_pandas(cur, data_definition=definition),
    Dataset.from_pandas(ref, data_definition=definition),
)
result = snapshot.dict()
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib() - before}))
"""
)
SCIPY_WORKER = (
    _RSS
    + """
import json, sys, time
import numpy as np
import pandas as pd
from scipy import stats
spec = json.loads(sys.argv[1])
cur = pd.read_parquet(spec["current"], columns=spec["numeric"] + spec["categorical"])
ref = pd.read_parquet(spec["reference"], columns=spec["numeric"] + spec["categorical"])
before = rss_mib()
start = time.perf_counter()
out = {}
for name in spec["numeric"]:
    out[name] = stats.ks_2samp(ref[name].dropna(), cur[name].dropna()).pvalue
for name in spec["categorical"]:
    counts = [part[name].fillna("<na>").value_counts() for part in (ref, cur)]
    table = pd.concat(counts, axis=1).fillna(0)
    out[name] = stats.chi2_contingency(table.to_numpy().T)[1]
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib() - before}))
"""
)
OURS_WORKER = (
    _RSS
    + """
import json, sys, time
import pandas as pd
from mlgitops.config import load_params
from mlgitops.monitoring.check import check
from mlgitops.monitoring.drift import table_drift
from mlgitops.monitoring.logs import read_labels, ReadStats
from mlgitops.monitoring.reference import load_score_reference
from mlgitops.profile import load_profile
spec = json.loads(sys.argv[1])
params = load_params()
profile = load_profile(params.paths.profile)
reference = load_score_reference(params.paths.score_reference)
frame = pd.read_parquet(spec["current"])
labels = read_labels([spec["labels"]], profile.target, params.monitoring.id_column, ReadStats())
before = rss_mib()
start = time.perf_counter()
drift = table_drift(frame, profile, reference, params.monitoring)
seconds = time.perf_counter() - start
peak = peak_mib() - before
before = rss_mib()
start = time.perf_counter()
result = check(frame, labels, profile, reference, params.monitoring, spec["model_version"])
full = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": peak, "full_check_s": full,
                  "full_check_peak_mib": peak_mib() - before, "alerts": len(result.alerts),
                  "drifted": sorted(k for k, v in drift.items() if v["drift"])}))
"""
)


# Runs the monitor in this process on the scheduler named by argv (sync, threads, or a
# LocalCluster of N worker processes, one thread each): what mlgitops.engine makes current.
MONITOR_RUNNER = """
import json, sys, time
import dask
from mlgitops.config import load_params
from mlgitops.monitoring.batch import MonitorRequest, run_monitor
spec = json.loads(sys.argv[1])
params = load_params()
request = MonitorRequest(spec["logs"], spec["labels"], spec["model_version"],
                         summary_path=spec["summary"], report_path=spec["report"])
start = time.perf_counter()
if spec["workers"]:
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=spec["workers"], threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        summary = run_monitor(params, request)
else:
    with dask.config.set(scheduler=spec["scheduler"]):
        summary = run_monitor(params, request)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": summary.rows}))
"""


def tree_rss_bytes(root) -> int:
    """RSS of a process and all its descendants."""
    import psutil

    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker may exit between the two calls
            total += proc.memory_info().rss
    return total


def run_measured(code: str, spec: dict, python: str = sys.executable) -> dict:
    """Run `code` in a fresh process; its result, wall seconds and the peak RSS (GiB) of the
    process tree, sampled every 50 ms."""
    import psutil

    start = time.perf_counter()
    child = subprocess.Popen(
        [python, "-c", code, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CI": "true"},
    )
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss_bytes(root))
        time.sleep(0.05)
    out, err = child.communicate()
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"monitor run failed:\n{out}\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "wall_s": wall, "peak_gib": peak / 2**30}


def write_partitioned_logs(tmp: Path, rows: int, base_rows: int, version: str, labels: bool):
    """One JSON-lines file and gzip day files of `rows` predictions: the generated base traffic
    repeated with new ids (copy k: `id` and `request_id` prefixed `k-`), day by day."""
    import gzip

    import pandas as pd

    from mlgitops.config import load_params
    from mlgitops.data.traffic import TrafficConfig, generate_table, traffic
    from mlgitops.io import load_pipeline, read_json
    from mlgitops.schema import load_schema

    params = load_params(ROOT / "params.yaml")
    config = TrafficConfig(rows=base_rows, days=30, model_version=version)
    lines, truth = traffic(
        generate_table(config),
        load_pipeline(params.paths.model),
        load_schema(params.paths.schema_file),
        float(read_json(params.paths.metrics)["threshold"]),
        config,
    )
    by_day: dict[str, list[bytes]] = {}
    for line in lines:
        day = json.loads(line)["time"][:10]
        by_day.setdefault(day, []).append(line)
    copies = -(-rows // base_rows)
    single = tmp / "single.jsonl"
    days = tmp / "days"
    days.mkdir()
    written = 0
    with single.open("wb") as plain:
        for day in sorted(by_day):
            with gzip.open(days / f"predictions-{day}.jsonl.gz", "wb", compresslevel=1) as zipped:
                for k in range(copies):
                    prefix = f"{k}-".encode()
                    chunk = (
                        b"\n".join(
                            line.replace(b'"id":"', b'"id":"' + prefix, 1).replace(
                                b'"request_id":"', b'"request_id":"' + prefix, 1
                            )
                            for line in by_day[day]
                        )
                        + b"\n"
                    )
                    plain.write(chunk)
                    zipped.write(chunk)
                    written += len(by_day[day])
    label_file = None
    if labels:
        label_file = tmp / "labels.csv"
        frames = []
        for k in range(copies):
            copy = truth.copy()
            for column in ("id", "request_id"):
                if column in copy.columns:
                    copy[column] = f"{k}-" + copy[column].astype(str)
            frames.append(copy)
        pd.concat(frames).to_csv(label_file, index=False)
    return single, days, label_file, written


def differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two JSON values differ (paths, with both values at the leaves)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += differences(a.get(key), b.get(key), f"{path}/{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}/{i}")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def partitioned(args) -> None:
    """(d): the monitor over one file and over day partitions, in-process and on 2 workers."""
    from mlgitops.io import read_json

    os.chdir(ROOT)
    version = read_json(ROOT / "release.json")["model_tag"]
    with tempfile.TemporaryDirectory(prefix="mlgitops-bench-monitor-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        single, days, label_file, written = write_partitioned_logs(
            tmp, args.rows, args.base_rows, version, args.labels
        )
        print(f"wrote {written:,} predictions (1 file and {len(list(days.iterdir()))} gzip day "
              f"files) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        runs = {
            "single": ([str(single)], "sync", 0, sys.executable),
            "days_threads": ([str(days)], "threads", 0, sys.executable),
            "days_2workers": ([str(days)], None, 2, sys.executable),
        }
        if args.baseline_python:  # the previous revision's monitor (its checkout's venv)
            runs["baseline_single"] = ([str(single)], "sync", 0, args.baseline_python)
        results, summaries = {}, {}
        for name, (logs, scheduler, workers, python) in runs.items():
            spec = {
                "logs": logs,
                "labels": [str(label_file)] if label_file else [],
                "model_version": version,
                "summary": str(tmp / f"{name}.json"),
                "report": str(tmp / f"{name}.html"),
                "scheduler": scheduler,
                "workers": workers,
            }
            results[name] = run_measured(MONITOR_RUNNER, spec, python)
            summary = json.loads((tmp / f"{name}.json").read_text())
            summary["input"]["log_files"] = None  # the one figure that names the layout
            summaries[name] = summary
            r = results[name]
            print(f"{name}: {r['rows']:,} rows, {r['seconds']:.1f} s in the monitor, "
                  f"{r['wall_s']:.1f} s wall, peak RSS of all processes "
                  f"{r['peak_gib']:.2f} GiB")  # fmt: skip
        ours = [n for n in summaries if not n.startswith("baseline")]
        same = int(all(summaries[n] == summaries["single"] for n in ours))
        for name in summaries:
            for path in differences(summaries["single"], summaries[name])[:5]:
                print(f"differs from single: {name}: {path}")
        print(" ".join(f"{k}={v}" for k, v in {
            "rows": written,
            "labels": int(bool(label_file)),
            **{f"{n}_s": round(r["wall_s"], 1) for n, r in results.items()},
            **{f"{n}_peak_gib": round(r["peak_gib"], 2) for n, r in results.items()},
            "identical_summaries": same,
            **(
                {"baseline_identical": int(summaries["baseline_single"] == summaries["single"])}
                if "baseline_single" in summaries
                else {}
            ),
        }.items()))  # fmt: skip


def worker(python: str, code: str, spec: dict, env: dict | None = None) -> dict:
    result = subprocess.run(
        [python, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise SystemExit(f"worker failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def evidently_python() -> str:
    python = EVIDENTLY_VENV / "bin" / "python"
    marker = EVIDENTLY_VENV / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS], check=True
        )
        marker.touch()
    return str(python)


def detection_delays(params, profile, reference, pipeline, schema, threshold) -> dict[str, float]:
    """Hours after the change until a run of the check raises the scenario's alert."""
    import pandas as pd

    from mlgitops.data.traffic import TrafficConfig, generate_table, traffic
    from mlgitops.monitoring.check import check
    from mlgitops.monitoring.logs import ReadStats, parse_predictions, read_labels

    expected = {
        "covariate_shift": {"feature_drift"},
        "new_category": {"new_category"},
        "broken_feature": {"feature_missing"},
        "concept_drift": {"fnr_degraded", "slow_decay"},
        "label_delay": {"labels_late"},
    }
    delays = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario, kinds in expected.items():
            config = TrafficConfig(scenario=scenario, rows=10_000, days=10, model_version="bench")
            lines, labels = traffic(generate_table(config), pipeline, schema, threshold, config)
            frame = parse_predictions(b"\n".join(lines) + b"\n", scenario, profile, ReadStats())
            label_file = Path(tmp) / f"{scenario}.csv"
            labels.to_csv(label_file, index=False)
            truth = read_labels([str(label_file)], profile.target, "id", ReadStats())
            start = frame["event_time"].min()
            delays[scenario] = float("nan")
            for hours in range(2, 24 * 12, 2):
                as_of = start + pd.Timedelta(hours=hours)
                seen = frame[frame["time"] <= as_of]
                result = check(seen, truth, profile, reference, params.monitoring, "bench", as_of)
                if any(alert.kind in kinds for alert in result.alerts):
                    delays[scenario] = float(hours)
                    break
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--partitioned", action="store_true", help="(d) only")
    parser.add_argument("--base-rows", type=int, default=200_000)
    parser.add_argument("--labels", action="store_true", help="(d): with a label file")
    parser.add_argument("--baseline-python", help="(d): also run this interpreter's monitor")
    args = parser.parse_args()
    if args.partitioned:
        partitioned(args)
        return

    import pandas as pd

    from mlgitops.config import load_params
    from mlgitops.data.traffic import TrafficConfig, generate_table, traffic, write_traffic
    from mlgitops.io import load_pipeline, read_json
    from mlgitops.monitoring.check import check
    from mlgitops.monitoring.logs import ReadStats, read_labels, read_predictions
    from mlgitops.monitoring.reference import load_score_reference
    from mlgitops.profile import NumericProfile, load_profile
    from mlgitops.schema import load_schema

    params = load_params(ROOT / "params.yaml")
    os.chdir(ROOT)
    profile = load_profile(params.paths.profile)
    reference = load_score_reference(params.paths.score_reference)
    schema = load_schema(params.paths.schema_file)
    pipeline = load_pipeline(params.paths.model)
    threshold = float(read_json(params.paths.metrics)["threshold"])
    version = read_json(params.paths.release)["model_tag"]
    numeric = [n for n, s in profile.features.items() if isinstance(s, NumericProfile)]
    categorical = [n for n in profile.features if n not in numeric]

    with tempfile.TemporaryDirectory(prefix="mlgitops-bench-monitor-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        config = TrafficConfig(rows=args.rows, days=30, model_version=version)
        lines, labels = traffic(generate_table(config), pipeline, schema, threshold, config)
        # The log as the service writes it: several files (one per worker/day in real life).
        logs = tmp / "logs"
        logs.mkdir()
        per_file = -(-len(lines) // 4)
        for i in range(4):
            chunk = lines[i * per_file : (i + 1) * per_file]
            (logs / f"predictions-{i}.jsonl").write_bytes(b"\n".join(chunk) + b"\n")
        _, label_file = write_traffic([], labels, tmp)
        del lines
        print(f"generated {args.rows:,} logged predictions in {time.perf_counter() - t0:.1f} s")

        # (b) end to end, from the files.
        cmd = [str(Path(sys.executable).parent / "mlgitops"), "monitor", str(logs)]
        cmd += ["--labels", str(label_file), "--summary", str(tmp / "s.json")]
        cmd += ["--report", str(tmp / "r.html")]
        start = time.perf_counter()
        end_code = subprocess.run(
            cmd, capture_output=True, check=False, env={**os.environ, "CI": "true"}
        ).returncode
        end_to_end = time.perf_counter() - start
        summary = json.loads((tmp / "s.json").read_text())
        print(f"mlgitops monitor end to end: {end_to_end:.2f} s (exit {end_code}): "
              f"{summary.get('alerts_by_kind')}")  # fmt: skip

        # (a) the same in-memory table for every method.
        frame = read_predictions([str(logs)], profile, ReadStats())
        current = tmp / "current.parquet"
        frame.to_parquet(current, index=False)
        reference_file = tmp / "reference.parquet"
        pd.read_parquet(params.paths.train).to_parquet(reference_file, index=False)
        spec = {
            "current": str(current),
            "reference": str(reference_file),
            "labels": str(label_file),
            "numeric": numeric,
            "categorical": categorical,
            "model_version": version,
        }
        ours = worker(sys.executable, OURS_WORKER, spec)
        print(f"mlgitops drift (whole table): {ours['seconds']:.2f} s, "
              f"+{ours['peak_mib']:.0f} MiB; "
              f"full windowed check {ours['full_check_s']:.2f} s, "
              f"+{ours['full_check_peak_mib']:.0f} MiB, {ours['alerts']} alerts; "
              f"drifted: {ours['drifted']}")  # fmt: skip
        scipy_loop = worker(sys.executable, SCIPY_WORKER, spec)
        print(f"scipy loop: {scipy_loop['seconds']:.2f} s, +{scipy_loop['peak_mib']:.0f} MiB")
        evidently = None
        if not args.skip_evidently:
            evidently = worker(evidently_python(), EVIDENTLY_WORKER, spec)
            print(f"Evidently DataDriftPreset: {evidently['seconds']:.2f} s, "
                  f"+{evidently['peak_mib']:.0f} MiB")  # fmt: skip

    # (c) false alarms over 200 unchanged days (400 predictions a day), and detection delays.
    far_config = TrafficConfig(rows=200 * 400, days=200, model_version="bench")
    far_lines, far_labels = traffic(
        generate_table(far_config), pipeline, schema, threshold, far_config
    )
    from mlgitops.monitoring.logs import parse_predictions

    far_frame = parse_predictions(b"\n".join(far_lines) + b"\n", "far", profile, ReadStats())
    with tempfile.TemporaryDirectory() as tmp_name:
        label_path = Path(tmp_name) / "labels.csv"
        far_labels.to_csv(label_path, index=False)
        far_truth = read_labels([str(label_path)], profile.target, "id", ReadStats())
    result = check(far_frame, far_truth, profile, reference, params.monitoring, "bench")
    drift_kinds = {"feature_drift", "score_drift", "missing_rate", "feature_missing",
                   "feature_constant", "new_category", "score_collapse"}  # fmt: skip
    n_windows = result.figures["windows_total"]
    drift_windows = len({a.window for a in result.alerts if a.kind in drift_kinds})
    any_windows = len({a.window for a in result.alerts})
    print(f"no-drift windows: {n_windows}, with a drift alert: {drift_windows}, any alert: "
          f"{any_windows}")  # fmt: skip
    delays = detection_delays(params, profile, reference, pipeline, schema, threshold)
    print("detection delay (hours):", json.dumps(delays))

    pairs = {
        "rows": args.rows,
        "ours_s": round(ours["seconds"], 2),
        "ours_peak_mib": round(ours["peak_mib"]),
        "ours_full_check_s": round(ours["full_check_s"], 2),
        "ours_full_check_peak_mib": round(ours["full_check_peak_mib"]),
        "scipy_s": round(scipy_loop["seconds"], 2),
        "scipy_peak_mib": round(scipy_loop["peak_mib"]),
        "evidently_s": round(evidently["seconds"], 2) if evidently else "nan",
        "evidently_peak_mib": round(evidently["peak_mib"]) if evidently else "nan",
        "speedup_vs_evidently": round(evidently["seconds"] / ours["seconds"], 1)
        if evidently
        else "nan",
        "speedup_vs_scipy": round(scipy_loop["seconds"] / ours["seconds"], 1),
        "end_to_end_s": round(end_to_end, 2),
        "end_to_end_exit": end_code,
        "far_windows": n_windows,
        "far_drift_windows": drift_windows,
        "far_drift_rate": round(drift_windows / n_windows, 4),
        "far_any_alert_rate": round(any_windows / n_windows, 4),
        "budget": params.monitoring.false_alarm_rate,
        **{f"delay_h_{k}": v for k, v in delays.items()},
        "target_speedup_ok": int(
            bool(evidently) and evidently["seconds"] / ours["seconds"] >= TARGET_SPEEDUP
        ),
        "target_end_to_end_ok": int(end_to_end < TARGET_END_TO_END_S),
        "target_far_ok": int(drift_windows / n_windows <= params.monitoring.false_alarm_rate),
    }
    print(" ".join(f"{key}={value}" for key, value in pairs.items()))


if __name__ == "__main__":
    main()
