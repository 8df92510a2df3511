"""`mlgitops data`: the embedded default dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops.cli.options import ParamsOption

app = typer.Typer(
    help="Generate or materialize the embedded default dataset.", no_args_is_help=True
)


@app.command()
def generate(
    out: Path | None = typer.Option(
        None, help="Where to write the CSV. Default: data.path from params.yaml."
    ),
    rows: int = typer.Option(50_000, min=1, help="Number of transactions."),
    seed: int = typer.Option(20_261_122, help="Random seed; the same seed gives the same bytes."),
    days: int = typer.Option(180, min=1, help="Length of the date range in days."),
    params: Path = ParamsOption,
) -> None:
    """Write the synthetic card-transaction dataset (byte-for-byte deterministic)."""
    from mlgitops.config import load_params
    from mlgitops.data.generate import GeneratorConfig, write_dataset

    target = out if out is not None else load_params(params).data.path
    write_dataset(target, GeneratorConfig(rows=rows, seed=seed, days=days))
    typer.echo(f"wrote {rows} rows to {target}")


@app.command()
def materialize(
    dvc_file: Path = typer.Option(Path("data.dvc"), help="The .dvc file recording the dataset."),
    params: Path = ParamsOption,
) -> None:
    """Get the dataset of data.dvc: `dvc pull`, else regenerate and verify the hash."""
    from mlgitops.config import load_params
    from mlgitops.data.materialize import materialize as run

    result = run(dvc_file, load_params(params).data.path, cwd=Path.cwd())
    typer.echo(f"data: {result.source}: {result.detail}")
