"""The batch check end to end: read the inputs, run the check, write the JSON and the HTML.

Both outputs are written in every case, also when the input is unusable, so a scheduled job
always leaves a report behind; the exit code says which case it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import MlgitopsError, MonitoringAlertError, MonitoringInputError
from mlgitops.io import atomic_write_text
from mlgitops.monitoring import html
from mlgitops.monitoring.check import check, clean
from mlgitops.monitoring.logs import ReadStats, no_valid_lines, read_labels, read_predictions
from mlgitops.monitoring.reference import load_score_reference
from mlgitops.profile import load_profile

STATUS_EXIT = {
    "ok": 0,
    "alert": MonitoringAlertError.exit_code,
    "unusable": MonitoringInputError.exit_code,
}


@dataclass(frozen=True)
class MonitorRequest:
    logs: Sequence[str]
    labels: Sequence[str] = ()
    model_version: str | None = None
    as_of: pd.Timestamp | None = None
    summary_path: Path | None = None
    report_path: Path | None = None


def _release_model_version(params: Params) -> str | None:
    try:
        return json.loads(Path(params.paths.release).read_text(encoding="utf-8"))["model_tag"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_monitor(
    params: Params,
    request: MonitorRequest,
    progress: Callable[[str], None] = lambda _: None,
    note: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The summary written; raises MonitoringAlertError or MonitoringInputError after writing it.
    Each of the summary's notes (input left out, no label source...) goes to `note` first."""
    config = params.monitoring
    log_stats, label_stats = ReadStats(), ReadStats()
    model_version = request.model_version or _release_model_version(params)
    summary: dict[str, Any]
    alerts: list[dict[str, Any]] = []
    try:
        profile = load_profile(params.paths.profile)
        reference = load_score_reference(params.paths.score_reference)
        progress("reading prediction logs")
        predictions = read_predictions(request.logs, profile, log_stats)
        if predictions.empty:
            raise MonitoringInputError(no_valid_lines(request.logs, log_stats))
        labels = None
        if request.labels:
            progress("reading labels")
            labels = read_labels(request.labels, profile.target, params.id_column, label_stats)
        result = check(
            predictions, labels, profile, reference, config, model_version, request.as_of, progress
        )
        summary = result.summary
        alerts = [a.model_dump() for a in result.alerts]
        summary["status"] = "alert" if alerts else "ok"
        if summary["rows"] == 0:
            summary["status"] = "unusable"
            summary["error"] = f"no predictions of model version {model_version}"
    except MlgitopsError as error:
        summary = {"status": "unusable", "error": str(error), "model_version": model_version}
    summary["exit_code"] = STATUS_EXIT[summary["status"]]
    summary["alerts"] = alerts
    summary["alerts_total"] = len(alerts)
    summary["alerts_by_kind"] = {
        kind: sum(1 for a in alerts if a["kind"] == kind)
        for kind in sorted({a["kind"] for a in alerts})
    }
    summary["cusum_h"] = config.cusum_h
    summary["input"] = {
        "log_files": len(log_stats.files),
        "log_lines": log_stats.lines,
        "malformed_lines": log_stats.malformed,
        "malformed_examples": log_stats.examples,
        "cut_lines": log_stats.cut_lines,
        "long_lines": log_stats.long_lines,
        "cut_archives": log_stats.cut_archives,
        "label_files": len(label_stats.files),
        "label_rows": label_stats.lines,
        "malformed_labels": label_stats.malformed,
        "malformed_label_examples": label_stats.examples,
        "cut_label_archives": label_stats.cut_archives,
    }
    # What the reader left out comes first: it qualifies every figure after it.
    damage = [f"prediction logs: {note}" for note in [log_stats.note()] if note is not None] + [
        f"labels: {note}" for note in [label_stats.note("label row")] if note is not None
    ]
    summary["notes"] = damage + list(summary.get("notes") or [])
    document = clean(summary)
    summary_path = request.summary_path or params.paths.monitor_summary
    report_path = request.report_path or params.paths.monitor_report
    atomic_write_text(summary_path, json.dumps(document, indent=1, sort_keys=True) + "\n")
    atomic_write_text(report_path, html.render(document))
    for text in document.get("notes") or []:
        note(text)
    if summary["status"] == "unusable":
        raise MonitoringInputError(f"{summary['error']} (report in {report_path})")
    if alerts:
        kinds = ", ".join(f"{k} x{v}" for k, v in document["alerts_by_kind"].items())
        count = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
        raise MonitoringAlertError(f"{count} ({kinds}); report in {report_path}")
    return document
