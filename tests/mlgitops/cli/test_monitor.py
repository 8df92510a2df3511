"""`mlgitops monitor` maps the summary's status to its error class, hence its exit code."""

from __future__ import annotations

import ast
from pathlib import Path

import mlgitops.monitor_demo
from mlgitops.cli.monitor import verdict_error
from mlgitops.errors import MonitoringAlertError, MonitoringInputError
from mlgitops.monitoring.summary import MonitorSummary

COUNTS = ("log_files", "log_lines", "malformed_lines", "cut_lines", "long_lines", "label_files",
          "label_rows", "malformed_labels")  # fmt: skip
LISTS = ("malformed_examples", "cut_archives", "malformed_label_examples", "cut_label_archives")
INPUT = {**dict.fromkeys(COUNTS, 0), **{key: [] for key in LISTS}}


def _summary(status: str, **extra) -> MonitorSummary:
    return MonitorSummary.of(
        {"status": status, "model_version": "m", "notes": [], "alerts": [],
         "alerts_total": 0, "alerts_by_kind": {}, "cusum_h": 5.0, "input": INPUT, **extra}
    )  # fmt: skip


def _alert(kind: str) -> dict:
    return {"kind": kind, "window": "w", "subject": "s", "message": "m"}


def test_ok_is_no_error() -> None:
    assert verdict_error(_summary("ok"), Path("r.html")) is None


def test_an_alert_exits_15_naming_the_kinds_and_the_report() -> None:
    alerts = [_alert("feature_drift"), _alert("feature_drift"), _alert("labels_late")]
    summary = _summary(
        "alert",
        alerts=alerts,
        alerts_total=3,
        alerts_by_kind={"feature_drift": 2, "labels_late": 1},
    )
    error = verdict_error(summary, Path("out/r.html"))
    assert isinstance(error, MonitoringAlertError)
    assert error.exit_code == 15
    assert str(error) == "3 alerts (feature_drift x2, labels_late x1); report in out/r.html"
    one = _summary("alert", alerts=alerts[:1], alerts_total=1, alerts_by_kind={"feature_drift": 1})
    assert str(verdict_error(one, Path("r.html"))).startswith("1 alert (feature_drift x1)")


def test_unusable_input_exits_14_with_its_error() -> None:
    error = verdict_error(_summary("unusable", error="logs: not found"), Path("r.html"))
    assert isinstance(error, MonitoringInputError)
    assert error.exit_code == 14
    assert str(error) == "logs: not found (report in r.html)"


def test_the_demo_runner_imports_nothing_from_the_cli() -> None:
    tree = ast.parse(Path(mlgitops.monitor_demo.__file__).read_text())
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert imported
    assert not [name for name in imported if name.startswith("mlgitops.cli")]
