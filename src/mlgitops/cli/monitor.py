"""`mlgitops monitor`: the batch check of logged predictions and labels (mlgitops.monitoring)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlgitops import errors as e
from mlgitops.cli.exitcodes import epilog
from mlgitops.cli.options import ParamsOption, parse_as_of

if TYPE_CHECKING:
    from mlgitops.monitoring.summary import MonitorSummary


def _progress_enabled() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("true", "1")


def register(app: typer.Typer) -> None:
    @app.command(
        epilog=epilog(
            e.MonitoringInputError,
            e.MonitoringAlertError,
            e.EngineError,
            e.PartitionError,
            ok="nothing fired",
        )
    )
    def monitor(
        logs: list[str] = typer.Argument(
            ...,
            help="Prediction logs: JSON-lines files (.gz too), Parquet files, directories of "
            "them (hive partitions such as date=2026-12-01/), s3:// or other URLs; one Dask task "
            "per file, on the current scheduler.",
        ),
        labels: list[str] = typer.Option(
            [], "--labels", "-l", help="Labels: CSV, JSON lines, Parquet or the /feedback log."
        ),
        model_version: str | None = typer.Option(
            None, help="Model version to check. Default: model_tag of release.json."
        ),
        as_of: str | None = typer.Option(
            None, help="ISO time of the check (labels after it are ignored). Default: last log."
        ),
        window: str | None = typer.Option(None, help="hour, day or rows (overrides params)."),
        summary: Path | None = typer.Option(None, help="JSON summary path."),
        report: Path | None = typer.Option(None, help="HTML report path."),
        params: Path = ParamsOption,
    ) -> None:
        """Check windows of predictions for drift, broken inputs and performance.

        Exit 0 when nothing fired, 15 when an alert fired, 14 when the input is unusable;
        the JSON summary and the HTML report are written in every case.
        """

        from mlgitops.config import load_params
        from mlgitops.engine import running
        from mlgitops.errors import ConfigError
        from mlgitops.monitoring.batch import MonitorRequest, output_paths, run_monitor

        loaded = load_params(params)
        if window is not None:
            if window not in ("hour", "day", "rows"):
                raise ConfigError(f"--window: {window!r} is not hour, day or rows")
            monitoring = loaded.monitoring.model_copy(update={"window": window})
            loaded = loaded.model_copy(update={"monitoring": monitoring})
        when = parse_as_of(as_of)
        request = MonitorRequest(logs, labels, model_version, when, summary, report)
        # The log files are read as Dask tasks on the engine params (or MLGITOPS_ENGINE /
        # MLGITOPS_DASK_SCHEDULER) choose; the summary is the same on any of them.
        with running(loaded.engine):
            if _progress_enabled():
                from rich.console import Console

                with Console(stderr=True).status("monitor") as status:
                    result = run_monitor(
                        loaded, request, lambda text: status.update(text), _print_note
                    )
            else:
                result = run_monitor(loaded, request, note=_print_note)
        error = verdict_error(result, output_paths(loaded, request).report)
        if error is not None:
            raise error
        typer.echo(
            f"monitor: ok: {result.rows} predictions in {result.windows_total} windows, no alerts"
        )


def verdict_error(summary: MonitorSummary, report: Path) -> e.MlgitopsError | None:
    """The error whose exit code and one line say the summary's status (None: "ok")."""
    if summary.status == "unusable":
        return input_error(summary, report)
    if summary.status == "alert":
        kinds = ", ".join(f"{k} x{v}" for k, v in summary.alerts_by_kind.items())
        count = f"{summary.alerts_total} alert{'s' if summary.alerts_total != 1 else ''}"
        return e.MonitoringAlertError(f"{count} ({kinds}); report in {report}")
    return None


def input_error(summary: MonitorSummary, report: Path) -> e.MonitoringInputError:
    """The one line of an unusable input, pointing at the report written all the same."""
    return e.MonitoringInputError(f"{summary.error} (report in {report})")


def _print_note(note: str) -> None:
    typer.echo(f"monitor: note: {note}", err=True)
