"""`mlgitops serve` commands."""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops.cli.options import ParamsOption


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""

    from mlgitops import errors as e
    from mlgitops.cli.exitcodes import epilog

    @app.command("serve", epilog=epilog(e.ArtifactError, e.ServingError, ok="stopped"))
    def serve(
        port: int = typer.Option(3000, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
        params_file: Path = ParamsOption,
    ) -> None:
        """Serve the current commit's bento (from release.json) on 127.0.0.1."""
        from mlgitops.cli.local_server import serve_release
        from mlgitops.config import load_params

        params = load_params(params_file)
        raise typer.Exit(serve_release(params, port=port))
