"""`mlgitops ab status` as a function: read the logs and labels, analyse, write the report and
the JSON result (atomically), and return the status (the CLI turns its verdict into the exit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import ExperimentError
from mlgitops.experiment.report import render_markdown
from mlgitops.experiment.status import ExperimentStatus, analyze
from mlgitops.io import atomic_write_text
from mlgitops.monitoring.logs import ReadStats, no_valid_lines, read_labels, read_predictions
from mlgitops.profile import ReferenceProfile


@dataclass(frozen=True)
class StatusRequest:
    predictions: Sequence[str]
    labels: Sequence[str]
    as_of: pd.Timestamp | None = None
    report: Path | None = None
    json: Path | None = None


def _no_features(params: Params) -> ReferenceProfile:
    # The analysis uses decisions, arms and times, not features: read the lines without them.
    return ReferenceProfile(
        n_rows=0,
        target=params.data.target,
        positive_class=str(params.data.positive_class),
        label_rate=0.0,
        features={},
    )


def run_status(params: Params, request: StatusRequest) -> ExperimentStatus:
    experiment = params.experiment
    if experiment is None:
        raise ExperimentError("params.yaml: no `experiment:` declared to report on")
    log_stats, label_stats = ReadStats(), ReadStats()
    profile = _no_features(params)
    predictions = read_predictions(request.predictions, profile, log_stats)
    if predictions.empty:
        raise ExperimentError(no_valid_lines(request.predictions, log_stats))
    labels = read_labels(request.labels, params.data.target, params.id_column, label_stats)
    status = analyze(predictions, labels, experiment, params.threshold, request.as_of)
    notes = [f"prediction logs: {note}" for note in [log_stats.note()] if note] + [
        f"labels: {note}" for note in [label_stats.note("label row")] if note
    ]
    if notes:
        status = status.model_copy(update={"input_notes": notes})
    if request.report is not None:
        atomic_write_text(request.report, render_markdown(status, params.threshold.currency))
    if request.json is not None:
        atomic_write_text(request.json, status.model_dump_json(indent=2) + "\n")
    return status
