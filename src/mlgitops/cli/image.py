"""`mlgitops image` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build and push the container image of a commit's bento.", no_args_is_help=True)
