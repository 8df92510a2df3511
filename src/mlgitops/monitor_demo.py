"""The monitor demo (`mlgitops monitor-demo`, `make monitor-demo`): a scenario's traffic through
the real service, then the batch monitor on what the service logged.

Posts the scenario's records in batches, every column but the target (id and timestamp
included), to a service the caller starts with its prediction log in the output directory
(`serve`: the CLI runs the current commit's bento on 127.0.0.1, as `mlgitops serve` does),
writes the labels as the labelling team would, and runs the batch monitor. Never in a bento.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops.config import Params
from mlgitops.errors import ServingError
from mlgitops.monitoring.summary import MonitorSummary
from mlgitops.release import ReleaseRecord

DEFAULT_SCENARIO = "broken_feature"
DEFAULT_ROWS = 5000
DEFAULT_DAYS = 7
BATCH_ROWS = 250
# Labels arrive an hour after the event in the demo, so every window is labelled at once.
LABEL_DELAY = "1h"

# Starts the release's service with these params (their serving logs point into the output
# directory), its output to the given file; yields its base URL once it is ready; stops it.
Serve = Callable[[Params, ReleaseRecord, Path], AbstractContextManager[str]]


@dataclass(frozen=True)
class DemoResult:
    summary: MonitorSummary
    prediction_log: Path
    labels: Path
    report: Path
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


def run_demo(
    params: Params,
    out_dir: Path,
    serve: Serve,
    scenario: str = DEFAULT_SCENARIO,
    rows: int = DEFAULT_ROWS,
    days: int = DEFAULT_DAYS,
    progress: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Replay `scenario` through the served release; the monitor's summary (alerts included)."""
    import httpx

    from mlgitops.data.traffic import TrafficConfig, generate_table
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
    table = generate_table(TrafficConfig(scenario=scenario, rows=rows, days=days))
    records = scenario_records(table, params.data.target)
    serving = params.serving.model_copy(
        update={"prediction_log": str(log), "feedback_log": str(feedback)}
    )
    posted = 0
    with serve(params.model_copy(update={"serving": serving}), record, server_log) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            size = min(BATCH_ROWS, serving.max_batch_size)
            for start in range(0, len(records), size):
                response = client.post("/predict", json={"records": records[start : start + size]})
                if response.status_code != 200:
                    raise ServingError(f"/predict answered {response.status_code}: {response.text}")
                posted += len(response.json()["predictions"])
        progress(f"posted {posted} {scenario} rows; stopping the server")
    labels = out_dir / "labels.csv"
    demo_labels(table, params).to_csv(labels, index=False, lineterminator="\n")
    report = out_dir / "report.html"
    request = MonitorRequest(
        [str(log)], [str(labels)], record.model_tag, None, out_dir / "summary.json", report
    )
    progress("running mlgitops monitor on the prediction log")
    summary = run_monitor(params, request)
    return DemoResult(summary, log, labels, report, posted, time.monotonic() - begin)
