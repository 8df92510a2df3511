"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

ParamsOption = typer.Option(Path("params.yaml"), "--params", help="The params file to read.")

# What `data ingest` and `retrain` take in: a labelled batch, or logged predictions and labels.
BatchArgument = typer.Argument(
    None, help="Labelled batch files (CSV or Parquet) in the dataset's columns."
)
PredictionsOption = typer.Option(
    [], "--predictions", help="Prediction logs (files, directories, URLs) to build the batch."
)
LabelsOption = typer.Option(
    [],
    "--labels",
    help="Labels for the logged predictions: a labels file, the feedback log, audited labels "
    "(by id, or by request_id and row).",
)
SourceOption = typer.Option(
    None, help="Provenance recorded for every new row. Default: the file names."
)


def parse_as_of(text: str | None) -> object:
    """--as-of as a UTC pandas Timestamp (a naive time is UTC), None when not given."""
    if text is None:
        return None
    import pandas as pd

    from mlgitops.errors import ConfigError

    try:
        when = pd.Timestamp(text)
    except ValueError:
        raise ConfigError(f"--as-of: {text!r} is not an ISO time") from None
    return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
