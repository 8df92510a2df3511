"""The BentoML service every pod runs: `bentoml serve mlgitops.serving.service:FraudDetector`.

The model is the one pinned in the bento (`pinned.json`, written by `build_bento`), loaded from
the model store by its exact tag. The API is a Starlette app mounted on the service (see
`mlgitops.serving.app`); BentoML serves it together with /livez, /readyz and /metrics.
"""

from __future__ import annotations

from pathlib import Path

import bentoml

from mlgitops.config import ServingConfig
from mlgitops.serving.app import create_app
from mlgitops.serving.layout import PINNED_FILE
from mlgitops.serving.runtime import Runtime, load_pinned

# BentoML's OpenTelemetry middleware builds a span per request even when the sample rate is 0
# (the default): a third of a single-row request's server time. Our API routes skip it unless
# tracing is wanted (MLGITOPS_TRACING=true, with an exporter configured for BentoML).
_UNTRACED = "predict,feedback,metadata,schema,livez,readyz,healthz,metrics"
PIN_FILE = Path(__file__).resolve().parent / PINNED_FILE
# Read at import: the decorator below needs workers, access log and tracing, and `bentoml serve`
# imports this module before it forks the workers (each worker imports it again).
SETTINGS = ServingConfig.from_env()

api = create_app()


@bentoml.asgi_app(api, path="/")
@bentoml.service(
    name="fraud-detector",
    workers=SETTINGS.workers,
    traffic={"timeout": 30},
    # Each prediction is already in the prediction log; a second line per request in the access
    # log costs CPU on the hot path. Turn it on with MLGITOPS_ACCESS_LOG=true.
    logging={"access": {"enabled": SETTINGS.access_log}},
    metrics={"enabled": True},
    tracing={} if SETTINGS.tracing else {"excluded_urls": _UNTRACED},
)
class FraudDetector:
    def __init__(self) -> None:
        # One Runtime per worker process, made by the service instance in that process.
        self.runtime = Runtime(load_pinned(PIN_FILE, SETTINGS), SETTINGS)
        api.state.runtime = self.runtime
        # Loading runs in the background: /livez answers at once, /readyz only after the model
        # loaded and passed its self-check (never, for a corrupt model).
        self.runtime.start(background=True)

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    @bentoml.on_shutdown
    def _close_logs(self) -> None:
        self.runtime.close()
