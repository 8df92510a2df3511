"""`mlgitops data`: generate, materialize, ingest into and simulate traffic from the dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops import errors as e
from mlgitops.cli import helptext
from mlgitops.cli.exitcodes import epilog
from mlgitops.cli.options import (
    BatchArgument,
    LabelsOption,
    ParamsOption,
    PredictionsOption,
    SourceOption,
)

app = helptext.app(
    help="The dataset of data.dvc: generate the default data, materialize it, ingest labelled "
    "batches, and simulate traffic to monitor.",
    no_args_is_help=True,
)


@app.command(epilog=epilog(e.DataError))
def generate(
    out: Path | None = typer.Option(
        None, help="Where to write the CSV. Default: data.path from params.yaml."
    ),
    rows: int = typer.Option(50_000, min=1, help="Number of transactions."),
    seed: int = typer.Option(20_261_122, help="Random seed; the same seed gives the same bytes."),
    days: int = typer.Option(180, min=1, help="Length of the date range in days."),
    scenario: str = typer.Option(
        "none",
        help="What changes: none, covariate_shift, new_category, broken_feature, "
        "concept_drift, label_delay.",
    ),
    start: str | None = typer.Option(None, help="First day (YYYY-MM-DD). Default: 2025-01-01."),
    first_id: int = typer.Option(1, min=1, help="Number of the first transaction_id."),
    file_format: str = typer.Option(
        "csv",
        "--format",
        help="csv: one CSV file (the default data). parquet: a directory of Parquet files "
        "from the vectorised generator (fast; the same rows for any --partitions).",
    ),
    partitions: int | None = typer.Option(
        None,
        min=1,
        help="Parquet files to write (--format parquet). Default: one per 4,194,304 rows.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing non-empty --out directory (parquet)."
    ),
    params: Path = ParamsOption,
) -> None:
    """Write the synthetic card-transaction dataset (byte-for-byte deterministic)."""
    if file_format == "parquet":
        _generate_parquet(
            out, rows, seed, days, scenario, start, first_id, partitions, force, params
        )
        return
    if file_format != "csv":
        raise e.ConfigError(f"--format: {file_format!r} is not csv or parquet")
    if partitions is not None or force:
        raise e.ConfigError("--partitions and --force apply to --format parquet only")
    from datetime import UTC, datetime

    from mlgitops.config import load_params
    from mlgitops.data.generate import DEFAULT_START, SCENARIOS, GeneratorConfig, write_dataset
    from mlgitops.errors import ConfigError

    if scenario not in SCENARIOS:
        raise ConfigError(f"--scenario: {scenario!r} is not one of {', '.join(SCENARIOS)}")
    begin = DEFAULT_START
    if start is not None:
        try:
            begin = datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise ConfigError(f"--start: {start!r} is not YYYY-MM-DD") from None
    target = out if out is not None else load_params(params).data.path
    config = GeneratorConfig(
        rows=rows, seed=seed, days=days, start=begin, scenario=scenario, first_id=first_id
    )
    write_dataset(target, config)
    typer.echo(f"wrote {rows} rows to {target}")


def _generate_parquet(
    out: Path | None,
    rows: int,
    seed: int,
    days: int,
    scenario: str,
    start: str | None,
    first_id: int,
    partitions: int | None,
    force: bool,
    params: Path,
) -> None:
    from mlgitops.config import load_params
    from mlgitops.data.generate_fast import (
        BulkConfig,
        default_partitions,
        start_of_day,
        write_parquet_dataset,
    )
    from mlgitops.progress import StepLog, interactive

    if scenario != "none":
        raise e.ConfigError("--scenario: --format parquet writes the default process only (none)")
    if out is None:
        data = load_params(params).data
        if data.is_url or data.format != "dataset":
            raise e.ConfigError(
                f"--out: none given and data.path {data.location} is not a local directory"
            )
        out = data.path
    config = BulkConfig(
        rows=rows,
        partitions=partitions if partitions is not None else default_partitions(rows),
        seed=seed,
        start=start_of_day(start),
        days=days,
        first_id=first_id,
    )
    status = StepLog("generate") if interactive() else None
    try:
        result = write_parquet_dataset(out, config, force=force, progress=status)
    finally:
        if status is not None:
            status.close()
    typer.echo(result.line())


@app.command(epilog=epilog(e.DataError, e.ArtifactError))
def traffic(
    out_dir: Path = typer.Argument(..., help="Directory for predictions.jsonl and labels.csv."),
    scenario: str = typer.Option("none", help="Scenario of the later period (see generate)."),
    rows: int = typer.Option(14_000, min=1, help="Number of transactions."),
    days: int = typer.Option(14, min=1, help="Length of the period in days."),
    model_version: str | None = typer.Option(
        None, help="model_version to log. Default: model_tag of release.json."
    ),
    params: Path = ParamsOption,
) -> None:
    """Score a later period under a scenario with the trained model: a prediction log and labels
    as the service and the labelling would write them (for trying out `mlgitops monitor`)."""
    from mlgitops.config import load_params
    from mlgitops.data.generate import SCENARIOS
    from mlgitops.data.traffic import TrafficConfig, generate_table, write_traffic
    from mlgitops.data.traffic import traffic as simulate
    from mlgitops.errors import ConfigError
    from mlgitops.io import load_pipeline, read_json
    from mlgitops.schema import load_schema

    if scenario not in SCENARIOS:
        raise ConfigError(f"--scenario: {scenario!r} is not one of {', '.join(SCENARIOS)}")
    loaded = load_params(params)
    version = model_version or read_json(loaded.paths.release)["model_tag"]
    config = TrafficConfig(scenario=scenario, rows=rows, days=days, model_version=version)
    threshold = float(read_json(loaded.paths.metrics)["threshold"])
    lines, labels = simulate(
        generate_table(config),
        load_pipeline(loaded.paths.model),
        load_schema(loaded.paths.schema_file),
        threshold,
        config,
    )
    log, labels_file = write_traffic(lines, labels, out_dir)
    typer.echo(f"wrote {len(lines)} predictions to {log} and {len(labels)} labels to {labels_file}")


@app.command(epilog=epilog(e.DataError))
def materialize(
    dvc_file: Path = typer.Option(Path("data.dvc"), help="The .dvc file recording the dataset."),
    params: Path = ParamsOption,
) -> None:
    """Get the dataset of data.dvc: `dvc pull`, else regenerate and verify the hash."""
    from mlgitops.config import load_params
    from mlgitops.data.materialize import materialize as run

    result = run(dvc_file, load_params(params).data.path, cwd=Path.cwd())
    typer.echo(f"data: {result.source}: {result.detail}")


@app.command(
    epilog=epilog(
        e.DataError,
        e.DataQualityError,
        e.ArtifactError,
        e.GitError,
        e.MonitoringInputError,
        e.IngestError,
        e.PartitionError,
    )
)
def ingest(
    batch: list[str] = BatchArgument,
    predictions: list[str] = PredictionsOption,
    labels: list[str] = LabelsOption,
    source: str | None = SourceOption,
    dvc_add: bool = typer.Option(True, "--dvc-add/--no-dvc-add", help="Run `dvc add` after."),
    summary_file: Path | None = typer.Option(
        None, "--summary", help="Also write what was ingested as JSON."
    ),
    allow_feedback_labels: bool = typer.Option(
        False,
        "--allow-feedback-labels",
        help="Ingest labels from the service's /feedback log (what its clients posted). "
        "Default: ingest.allow_feedback_labels.",
    ),
    set_aside: Path | None = typer.Option(
        None,
        "--set-aside",
        help="Where to list the label rows set aside. Default: paths.ingest_set_aside.",
    ),
    params: Path = ParamsOption,
) -> None:
    """Append a labelled batch to the dataset of data.dvc: validated as the pipeline validates,
    de-duplicated by id, with provenance per row; a bad batch is refused whole. Labels for ids
    not in the prediction log, ids labelled both 0 and 1 and malformed label rows are set aside
    one by one (printed, and listed in a file) while they are at most
    ingest.max_set_aside_share of the label rows; beyond it the batch is refused."""
    from mlgitops.config import load_params
    from mlgitops.data.ingest import IngestRequest
    from mlgitops.data.ingest import ingest as run
    from mlgitops.io import save_model_json
    from mlgitops.progress import Progress

    request = IngestRequest(
        batch=tuple(batch or ()),
        predictions=tuple(predictions),
        labels=tuple(labels),
        source=source,
        dvc_add=dvc_add,
        allow_feedback_labels=allow_feedback_labels,
        set_aside_path=set_aside,
    )
    status = Progress("ingest", 5)

    def warn(text: str) -> None:
        status.close()  # a progress line would be overwritten
        typer.echo(text, err=True)

    try:
        result = run(load_params(params), request, progress=status.step, warn=warn)
    finally:
        status.close()
    if summary_file is not None:
        save_model_json(result, summary_file)
    typer.echo(result.line())
