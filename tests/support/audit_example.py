"""The example audit of docs/audit.md, from simulated data:

    python -m tests.support.audit_example OUT_DIR

(in the repository root, venv active, after `dvc repro`). It runs the commands a user runs:
`mlgitops data traffic`, `mlgitops audit sample`, then lets three simulated annotators label
the tasks (they miss 10%, 10% and 20% of frauds and call 1%, 1% and 3% of legit transactions
fraud; 30% of the tasks get a second annotator), exports their work as Label Studio would
(JSON, JSON_MIN, CSV), and runs `mlgitops audit import` and `mlgitops audit report`. Last it
prints the truth of the whole period, which an audit never has, to compare.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from mlgitops.cli.main import main
from tests.support import audit


def _run(*args: str) -> None:
    print("$ mlgitops " + " ".join(args))
    code = main(list(args))
    if code:
        raise SystemExit(code)


def _truth(traffic: Path, threshold: float) -> dict[str, float]:
    labels = {
        row["id"]: int(row["label"]) for row in csv.DictReader((traffic / "labels.csv").open())
    }
    tp = fp = fn = tn = 0
    for line in (traffic / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        y, f = labels[record["id"]], record["score"] >= threshold
        tp, fp = tp + (y and f), fp + (not y and f)
        fn, tn = fn + (y and not f), tn + (not y and not f)
    total = tp + fp + fn + tn
    return {
        "precision": tp / (tp + fp),
        "fpr": fp / (fp + tn),
        "fnr": fn / (fn + tp),
        "fraud_rate": (tp + fn) / total,
    }


def example(out: Path) -> None:
    traffic, sample = out / "traffic", out / "sample"
    _run("data", "traffic", str(traffic))
    _run(
        "audit", "sample", "--predictions", str(traffic / "predictions.jsonl"), "--out", str(sample)
    )
    tasks = json.loads((sample / "tasks.label_studio.json").read_text())
    truth = {
        row["id"]: int(row["label"]) for row in csv.DictReader((traffic / "labels.csv").open())
    }
    exports = audit.write_exports(audit.annotate(tasks, truth), out / "exports")
    labels = out / "labels" / "audit.csv"
    _run("audit", "import", str(exports["JSON"]), "--sample", str(sample), "--out", str(labels))
    report = out / "report" / "audit.md"
    _run(
        "audit",
        "report",
        "--sample",
        str(sample),
        "--labels",
        str(labels),
        "--out",
        str(report),
        "--json",
        str(out / "report" / "audit.json"),
    )
    design = json.loads((sample / "design.json").read_text())
    print(
        "truth of the whole period:",
        {k: round(v, 4) for k, v in _truth(traffic, design["threshold"]).items()},
    )


if __name__ == "__main__":
    example(Path(sys.argv[1] if len(sys.argv) > 1 else "audit-example"))
