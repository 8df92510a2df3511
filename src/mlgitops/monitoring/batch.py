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
from mlgitops.errors import MlgitopsError
from mlgitops.io import atomic_write_text
from mlgitops.monitoring import html
from mlgitops.monitoring.logs import ReadStats, read_labels
from mlgitops.monitoring.reference import load_score_reference
from mlgitops.monitoring.scan import check_logs
from mlgitops.monitoring.summary import MonitorSummary
from mlgitops.profile import load_profile


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
) -> MonitorSummary:
    """The summary, after writing it and the report. Its status is the verdict: "ok", "alert",
    or "unusable" (no readable input; `error` says why). Each of its notes (input left out, no
    label source...) goes to `note` first."""
    config = params.monitoring
    log_stats, label_stats = ReadStats(), ReadStats()
    model_version = request.model_version or _release_model_version(params)
    figures: dict[str, Any]
    alerts: list[dict[str, Any]] = []
    try:
        profile = load_profile(params.paths.profile)
        reference = load_score_reference(params.paths.score_reference)
        labels = None
        if request.labels:
            progress("reading labels")
            labels = read_labels(request.labels, profile.target, params.id_column, label_stats)
        progress("reading prediction logs")
        result = check_logs(
            request.logs,
            labels,
            profile,
            reference,
            config,
            model_version,
            log_stats,
            request.as_of,
            progress,
        )
        figures = result.figures
        alerts = [a.model_dump() for a in result.alerts]
        figures["status"] = "alert" if alerts else "ok"
        if figures["rows"] == 0:
            figures["status"] = "unusable"
            figures["error"] = f"no predictions of model version {model_version}"
    except MlgitopsError as error:
        figures = {"status": "unusable", "error": str(error), "model_version": model_version}
    figures["alerts"] = alerts
    figures["alerts_total"] = len(alerts)
    figures["alerts_by_kind"] = {
        kind: sum(1 for a in alerts if a["kind"] == kind)
        for kind in sorted({a["kind"] for a in alerts})
    }
    figures["cusum_h"] = config.cusum_h
    figures["input"] = {
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
    figures["notes"] = damage + list(figures.get("notes") or [])
    summary = MonitorSummary.of(figures)
    paths = output_paths(params, request)
    atomic_write_text(paths.summary, summary.to_json())
    atomic_write_text(paths.report, html.render(summary))
    for text in summary.notes:
        note(text)
    return summary


@dataclass(frozen=True)
class OutputPaths:
    summary: Path
    report: Path


def output_paths(params: Params, request: MonitorRequest) -> OutputPaths:
    """Where `run_monitor` writes: the request's paths, else params' `paths:`."""
    return OutputPaths(
        request.summary_path or params.paths.monitor_summary,
        request.report_path or params.paths.monitor_report,
    )
