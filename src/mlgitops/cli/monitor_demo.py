"""`mlgitops monitor-demo` (`make monitor-demo`): a scenario's traffic through the real service,
then `mlgitops monitor` on what the service logged.

Starts the current commit's bento on 127.0.0.1 (as `mlgitops serve` does, on a free port, with
its prediction log in the output directory), posts the scenario's records in batches, every
column but the target (id and timestamp included), stops the server, writes the labels as the
labelling team would, and runs the batch monitor. Operator-side code: never in a bento.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from mlgitops.cli.options import ParamsOption
from mlgitops.config import Params
from mlgitops.errors import ServingError

DEFAULT_SCENARIO = "broken_feature"
DEFAULT_ROWS = 5000
DEFAULT_DAYS = 7
BATCH_ROWS = 250
START_TIMEOUT = 120.0
# Labels arrive an hour after the event in the demo, so every window is labelled at once.
LABEL_DELAY = "1h"


@dataclass(frozen=True)
class DemoResult:
    summary: dict[str, Any]
    prediction_log: Path
    labels: Path
    rows_posted: int
    seconds: float


def scenario_records(table: Any, target: str) -> list[dict[str, Any]]:
    """Every column but the target as JSON values: empty cells null, numpy scalars plain,
    timestamps ISO 8601 strings (as in the CSV)."""
    import pandas as pd

    frame = table.drop(columns=[target])
    for name in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[name]):
            frame[name] = frame[name].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def demo_labels(table: Any, params: Params) -> Any:
    """id, label, label_time for every row (the monitor joins them by id)."""
    import pandas as pd

    event = pd.to_datetime(table[params.data.time_column], utc=True)
    return pd.DataFrame(
        {
            "id": table[params.id_column].astype(str),
            "label": table[params.data.target].astype(int),
            "label_time": (event + pd.Timedelta(LABEL_DELAY)).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


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


def run_demo(
    params: Params,
    out_dir: Path,
    scenario: str = DEFAULT_SCENARIO,
    rows: int = DEFAULT_ROWS,
    days: int = DEFAULT_DAYS,
    progress: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Replay `scenario` through the served release; the monitor's summary (alerts included)."""
    # The process helpers the image tests use too; imported here, not at CLI start.
    import httpx

    from mlgitops.cli.local_server import ensure_bento, serve_command, serve_environment
    from mlgitops.data.traffic import TrafficConfig, generate_table
    from mlgitops.errors import MonitoringAlertError
    from mlgitops.git import current_commit
    from mlgitops.image.run import free_port, stop_process
    from mlgitops.monitoring.batch import MonitorRequest, run_monitor
    from mlgitops.release import load_release

    begin = time.monotonic()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    log, feedback, server_log = (
        out_dir / "predictions.jsonl",
        out_dir / "feedback.jsonl",
        out_dir / "server.log",
    )
    for stale in (log, feedback):
        stale.unlink(missing_ok=True)
    record = load_release(params.paths.release)
    ensure_bento(record, params.paths.bento_archive)
    table = generate_table(TrafficConfig(scenario=scenario, rows=rows, days=days))
    records = scenario_records(table, params.data.target)
    serving = params.serving.model_copy(
        update={"prediction_log": str(log), "feedback_log": str(feedback)}
    )
    env = serve_environment(
        params.model_copy(update={"serving": serving}), record, current_commit(), dict(os.environ)
    )
    port = free_port()
    progress(f"starting {record.bento_tag} on 127.0.0.1:{port}")
    with server_log.open("wb") as sink:
        process = subprocess.Popen(
            serve_command(record.bento_tag, port), env=env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    posted = 0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            _wait_ready(client, process, time.monotonic() + START_TIMEOUT, server_log)
            size = min(BATCH_ROWS, serving.max_batch_size)
            for start in range(0, len(records), size):
                response = client.post("/predict", json={"records": records[start : start + size]})
                if response.status_code != 200:
                    raise ServingError(f"/predict answered {response.status_code}: {response.text}")
                posted += len(response.json()["predictions"])
            progress(f"posted {posted} {scenario} rows; stopping the server")
    finally:
        stop_process(process, grace=30.0)
    labels = out_dir / "labels.csv"
    demo_labels(table, params).to_csv(labels, index=False, lineterminator="\n")
    request = MonitorRequest(
        [str(log)], [str(labels)], record.model_tag, None,
        out_dir / "summary.json", out_dir / "report.html",
    )  # fmt: skip
    progress("running mlgitops monitor on the prediction log")
    try:
        summary = run_monitor(params, request)
    except MonitoringAlertError:
        import json

        summary = json.loads(request.summary_path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    return DemoResult(summary, log, labels, posted, time.monotonic() - begin)


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
        from mlgitops.config import load_params

        result = run_demo(load_params(params), out, scenario, rows, days, typer.echo)
        summary = result.summary
        alerts = summary.get("alerts", [])
        typer.echo(
            f"monitor-demo: {result.rows_posted} rows through the service in "
            f"{result.seconds:.0f}s; {len(alerts)} alerts ({summary.get('status')})"
        )
        for kind, count in summary.get("alerts_by_kind", {}).items():
            typer.echo(f"  {kind} x{count}")
        for alert in alerts[:10]:
            typer.echo(f"  - {alert['window']} {alert['subject']}: {alert['message']}")
        typer.echo(f"report: {out / 'report.html'}")
