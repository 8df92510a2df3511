"""`mlgitops monitor-demo` (`make monitor-demo`): a scenario's traffic through the real service,
then `mlgitops monitor` on what the service logged (mlgitops.monitor_demo).

This module only runs the service: the current commit's bento on 127.0.0.1, as `mlgitops serve`
does, on a free port. Operator-side code: never in a bento.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import typer

from mlgitops.cli.options import ParamsOption
from mlgitops.config import Params
from mlgitops.errors import ServingError
from mlgitops.monitor_demo import DEFAULT_DAYS, DEFAULT_ROWS, DEFAULT_SCENARIO
from mlgitops.release import ReleaseRecord

START_TIMEOUT = 120.0


def _wait_ready(client: Any, process: subprocess.Popen[bytes], deadline: float, log: Path) -> None:
    import httpx

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServingError(f"the server exited with {process.returncode}; see {log}")
        with suppress(httpx.HTTPError):
            if client.get("/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise ServingError(f"the server was not ready within {START_TIMEOUT:.0f}s; see {log}")


def local_service(
    progress: Callable[[str], None],
) -> Callable[[Params, ReleaseRecord, Path], Any]:
    """The demo's `serve`: the release's bento on 127.0.0.1 until the block ends."""

    @contextmanager
    def serve(params: Params, record: ReleaseRecord, server_log: Path) -> Iterator[str]:
        # The process helpers the image tests use too; imported here, not at CLI start.
        import httpx

        from mlgitops.cli.local_server import ensure_bento, serve_command, serve_environment
        from mlgitops.git import current_commit
        from mlgitops.image.run import free_port, stop_process

        ensure_bento(record, params.paths.bento_archive)
        env = serve_environment(params, record, current_commit(), dict(os.environ))
        port = free_port()
        progress(f"starting {record.bento_tag} on 127.0.0.1:{port}")
        with server_log.open("wb") as sink:
            process = subprocess.Popen(
                serve_command(record.bento_tag, port), env=env, stdout=sink,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                _wait_ready(client, process, time.monotonic() + START_TIMEOUT, server_log)
            yield url
        finally:
            stop_process(process, grace=30.0)

    return serve


def register(app: typer.Typer) -> None:
    from mlgitops import errors as e
    from mlgitops.cli.exitcodes import epilog

    exits = epilog(e.ArtifactError, e.ServingError, e.MonitoringInputError)

    @app.command("monitor-demo", epilog=exits)
    def monitor_demo(
        scenario: str = typer.Option(DEFAULT_SCENARIO, help="Traffic scenario (data.generate)."),
        rows: int = typer.Option(DEFAULT_ROWS, min=100, help="Rows to replay."),
        days: int = typer.Option(DEFAULT_DAYS, min=1, help="Days the rows span (event time)."),
        out: Path = typer.Option(Path("reports/monitor/demo"), help="Output directory."),
        params: Path = ParamsOption,
    ) -> None:
        """Replay a scenario through the real service, then monitor what it logged."""
        from mlgitops.cli.monitor import input_error
        from mlgitops.config import load_params
        from mlgitops.monitor_demo import run_demo

        serve = local_service(typer.echo)
        result = run_demo(load_params(params), out, serve, scenario, rows, days, typer.echo)
        summary = result.summary
        if summary.status == "unusable":  # an alert is what the demo is for: not an error
            raise input_error(summary, result.report)
        typer.echo(
            f"monitor-demo: {result.rows_posted} rows through the service in "
            f"{result.seconds:.0f}s; {len(summary.alerts)} alerts ({summary.status})"
        )
        for kind, count in summary.alerts_by_kind.items():
            typer.echo(f"  {kind} x{count}")
        for alert in summary.alerts[:10]:
            typer.echo(f"  - {alert.window} {alert.subject}: {alert.message}")
        typer.echo(f"report: {out / 'report.html'}")
