"""The BentoML service every pod runs: `bentoml serve mlgitops.serving.service:FraudDetector`.

The model is the one pinned in the bento (`pinned.json`, written by `build_bento`), loaded from
the model store by its exact tag. The API is a Starlette app mounted on the service (see
`mlgitops.serving.app`); BentoML serves it together with /livez, /readyz and /metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml

from mlgitops.serving.app import create_app
from mlgitops.serving.layout import PINNED_FILE
from mlgitops.serving.runtime import Runtime, Settings, load_pinned

ENV_WORKERS = "MLGITOPS_WORKERS"
ENV_ACCESS_LOG = "MLGITOPS_ACCESS_LOG"
ENV_TRACING = "MLGITOPS_TRACING"
# BentoML's OpenTelemetry middleware builds a span per request even when the sample rate is 0
# (the default): a third of a single-row request's server time. Our API routes skip it unless
# tracing is wanted (MLGITOPS_TRACING=1, with an exporter configured for BentoML).
_UNTRACED = "predict,feedback,metadata,schema,livez,readyz,healthz,metrics"
PIN_FILE = Path(__file__).resolve().parent / PINNED_FILE

# One Runtime per worker process, created by the service instance in that process.
_runtime: Runtime | None = None


def _current_runtime() -> Runtime | None:
    return _runtime


api = create_app(_current_runtime)


@bentoml.asgi_app(api, path="/")
@bentoml.service(
    name="fraud-detector",
    # Read when the module is imported, i.e. by `bentoml serve` before it forks workers.
    workers=int(os.environ.get(ENV_WORKERS, "1")),
    traffic={"timeout": 30},
    # Each prediction is already in the prediction log; a second line per request in the access
    # log costs CPU on the hot path. Turn it on with MLGITOPS_ACCESS_LOG=1.
    logging={"access": {"enabled": os.environ.get(ENV_ACCESS_LOG, "0") == "1"}},
    metrics={"enabled": True},
    tracing={} if os.environ.get(ENV_TRACING) == "1" else {"excluded_urls": _UNTRACED},
)
class FraudDetector:
    def __init__(self) -> None:
        global _runtime
        self.runtime = Runtime(
            load_pinned(PIN_FILE),
            Settings.from_env(),
            git_commit=os.environ.get("MLGITOPS_GIT_COMMIT") or None,
        )
        _runtime = self.runtime
        # Loading runs in the background: /livez answers at once, /readyz only after the model
        # loaded and passed its self-check (never, for a corrupt model).
        self.runtime.start(background=True)

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    @bentoml.on_shutdown
    def _close_logs(self) -> None:
        self.runtime.close()
