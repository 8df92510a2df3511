"""`mlgitops ab status`: the verdict of the experiment declared in params (mlgitops.experiment)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops import errors as e
from mlgitops.cli import helptext
from mlgitops.cli.exitcodes import epilog
from mlgitops.cli.options import ParamsOption, parse_as_of

app = helptext.app(help="A/B tests and shadow runs of a challenger release.", no_args_is_help=True)


@app.command(
    epilog=epilog(
        e.MonitoringInputError,
        e.ExperimentError,
        e.ExperimentNoDifferenceYetError,
        e.ExperimentInsufficientDataError,
        e.ExperimentChampionBetterError,
        e.ExperimentGuardrailBreachedError,
        e.ExperimentSampleRatioMismatchError,
        ok="CHALLENGER_BETTER",
    )
)
def status(
    predictions: list[str] = typer.Option(
        ..., "--predictions", "-p", help="Prediction logs (files, directories, .gz, URLs)."
    ),
    labels: list[str] = typer.Option(
        [], "--labels", "-l", help="Labels: CSV, JSON lines or Parquet with id,label[,label_time]."
    ),
    as_of: str | None = typer.Option(
        None, help="ISO time of the status (later lines and labels ignored). Default: last line."
    ),
    out: Path | None = typer.Option(None, "--out", help="Markdown report path."),
    json_path: Path | None = typer.Option(None, "--json", help="JSON result path."),
    params: Path = ParamsOption,
) -> None:
    """Sample ratio, guardrails and the always-valid sequential test of the primary metric.

    Exit 0: CHALLENGER_BETTER; 41 NO_DIFFERENCE_YET; 42 INSUFFICIENT_DATA; 43 CHAMPION_BETTER;
    44 GUARDRAIL_BREACHED; 45 SRM; 40 unusable input. Report and JSON are written for every
    verdict.
    """

    from mlgitops.config import load_params
    from mlgitops.experiment.run import StatusRequest, run_status

    when = parse_as_of(as_of)
    result = run_status(
        load_params(params), StatusRequest(predictions, labels, when, out, json_path)
    )
    for note in result.input_notes:
        typer.echo(f"ab status: note: {note}", err=True)
    error = result.error
    if error is not None:
        raise error  # one line on stderr, and the verdict's exit code
    typer.echo(f"ab status: {result.verdict}: {result.reason}")
