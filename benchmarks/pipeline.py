"""Benchmark: `dvc repro` end to end at 50k, 500k and 2M rows, stage by stage.

For each size it builds a temporary git+DVC project like this one, runs every stage with
`dvc repro --single-item STAGE` and records wall time and peak resident memory of the stage's
process tree. At the largest size it then times a no-op `dvc repro` next to `git status`, the
baseline measured in the same run. The last line holds the figures as key=value pairs.

    python benchmarks/pipeline.py [--sizes 50000,500000,2000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlgitops.data.generate import GeneratorConfig, write_dataset
from tests.support.project import VENV_BIN, make_project, run

TARGET_SECONDS_2M = 300.0
TARGET_PEAK_GIB = 4.0
TARGET_NOOP_SECONDS = 3.0

# Runs a command and prints its wall time and the peak RSS of its largest descendant (KiB).
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n"
)


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak GiB) of `cmd`, run in a fresh process so peaks don't carry over."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds, peak_kib, code = result.stdout.strip().splitlines()[-1].split()
    if int(code) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{result.stdout}\n{result.stderr}")
    return float(seconds), int(peak_kib) / (1024 * 1024)


def best_of(cmd: list[str], cwd: Path, env: dict[str, str], repeats: int = 5) -> float:
    return min(measure(cmd, cwd, env)[0] for _ in range(repeats))


def pipeline_stages(root: Path) -> tuple[str, ...]:
    """Every stage of dvc.yaml, each after the stages it depends on (ties in file order), read
    from DVC's own graph so the benchmark runs what `dvc repro` runs."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph
        stages = [s for s in graph.nodes if getattr(s, "cmd", None)]
        position = {s: i for i, s in enumerate(stages)}
        order = nx.lexicographical_topological_sort(graph.reverse(), key=position.get)
        return tuple(s.addressing for s in order if s in position)


def bench_size(
    rows: int, workdir: Path, env: dict[str, str], stages: tuple[str, ...]
) -> dict[str, float]:
    root = make_project(workdir / f"rows-{rows}", default_data=True, real_params=True)
    started = time.perf_counter()
    write_dataset(root / "data" / "transactions.csv", GeneratorConfig(rows=rows))
    generate_s = time.perf_counter() - started
    run(["dvc", "add", "-q", "data"], root)
    run(["git", "commit", "-q", "--allow-empty", "-am", f"{rows} rows"], root)
    figures: dict[str, float] = {"generate_s": generate_s}
    for stage in stages:
        seconds, peak = measure(["dvc", "repro", "--single-item", stage], root, env)
        figures[f"{stage}_s"], figures[f"{stage}_peak_gib"] = seconds, peak
        print(f"  {rows:>9,} rows  {stage:<15} {seconds:7.1f} s  peak {peak:5.2f} GiB", flush=True)
    figures["total_s"] = sum(figures[f"{s}_s"] for s in stages)
    figures["peak_gib"] = max(figures[f"{s}_peak_gib"] for s in stages)
    metrics = json.loads((root / "metrics" / "evaluate.json").read_text())
    figures["roc_auc"] = metrics["roc_auc"]
    figures["noop_repro_s"] = best_of(["dvc", "repro"], root, env)
    figures["git_status_s"] = best_of(["git", "status", "--porcelain"], root, env)
    status = run(["dvc", "status"], root).stdout
    figures["status_clean"] = float("up to date" in status)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,500000,2000000")
    parser.add_argument("--keep", type=Path, help="keep the projects in this directory")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
    env.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="bench-bentoml-"))
    env["DVC_NO_ANALYTICS"] = "1"
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = args.keep or Path(tmp)
        stages = pipeline_stages(Path(__file__).resolve().parents[1])
        results = {rows: bench_size(rows, workdir, env, stages) for rows in sizes}

    print()
    print(f"{'rows':>10} {'total s':>8} {'peak GiB':>9} {'no-op s':>8} {'git st s':>9} {'AUC':>6}")
    for rows, f in results.items():
        print(
            f"{rows:>10,} {f['total_s']:8.1f} {f['peak_gib']:9.2f} {f['noop_repro_s']:8.2f} "
            f"{f['git_status_s']:9.3f} {f['roc_auc']:6.3f}"
        )
    largest, smallest = max(sizes), min(sizes)
    big, small = results[largest], results[smallest]
    pairs = {
        "rows_max": largest,
        "total_s_max": round(big["total_s"], 1),
        "peak_gib_max": round(big["peak_gib"], 2),
        **{f"{s}_s_max": round(big[f"{s}_s"], 1) for s in stages},
        **{f"{s}_peak_gib_max": round(big[f"{s}_peak_gib"], 2) for s in stages},
        "total_s_min": round(small["total_s"], 1),
        "time_ratio_max_vs_min": round(big["total_s"] / small["total_s"], 2),
        "rows_ratio_max_vs_min": round(largest / smallest, 1),
        "noop_repro_s": round(big["noop_repro_s"], 3),
        "git_status_s": round(big["git_status_s"], 4),
        "noop_vs_git_status_ratio": round(big["noop_repro_s"] / big["git_status_s"], 1),
        "status_clean": int(big["status_clean"]),
        "target_total_ok": int(largest < 2_000_000 or big["total_s"] < TARGET_SECONDS_2M),
        "target_peak_ok": int(big["peak_gib"] < TARGET_PEAK_GIB),
        "target_noop_ok": int(big["noop_repro_s"] < TARGET_NOOP_SECONDS),
    }
    print(" ".join(f"{key}={value}" for key, value in pairs.items()))


if __name__ == "__main__":
    main()
