"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

ParamsOption = typer.Option(Path("params.yaml"), "--params", help="The params file to read.")
