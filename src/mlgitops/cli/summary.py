"""`mlgitops summary`: what the working tree releases, in one table."""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops.cli.options import ParamsOption


def summary(params: Path = ParamsOption) -> None:
    """Print the release record (bento tag, image, hashes) and the headline metrics."""
    from rich.console import Console
    from rich.table import Table

    from mlgitops.config import load_params
    from mlgitops.release import load_release

    config = load_params(params)
    release = load_release(config.paths.release)
    table = Table(title=f"Release {release.bento_tag}", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = {
        "bento tag": release.bento_tag,
        "image": release.image,
        "model hash": release.model_hash,
        "data hash": release.data_hash,
        "params hash": release.params_hash,
        "data until": release.data_until or "(no time column)",
        "threshold": f"{release.threshold:.6f} ({release.threshold_policy})",
    }
    currency = config.threshold.currency
    for name, value in release.metrics.items():
        if name.endswith("_per_1000"):
            unit = f" {currency}" if name.startswith("expected_cost") else ""
            rows[name.replace("_", " ")] = f"{value:,.1f}{unit}"
        else:
            rows[name.replace("_", " ")] = f"{value:.4f}"
    for key, value in rows.items():
        table.add_row(key, value)
    # Hashes must print whole, even in a narrow or non-interactive terminal.
    Console(width=max(Console().width, 110)).print(table)


def register(app: typer.Typer) -> None:
    from mlgitops import errors as e
    from mlgitops.cli.exitcodes import epilog

    app.command(epilog=epilog(e.ArtifactError))(summary)
