"""The BentoML service every pod runs: `bentoml serve mlgitops.serving.service:FraudDetector`.

The model is the one pinned in the bento (`pinned.json`, written by `build_bento`), loaded from
the model store by its exact tag. The API is a Starlette app mounted on the service (see
`mlgitops.serving.app`); BentoML serves it together with /livez, /readyz and /metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bentoml

from mlgitops.config import ServingConfig
from mlgitops.serving.app import create_app
from mlgitops.serving.layout import PINNED_FILE
from mlgitops.serving.limits import install as install_limits
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
        # Not ready while a log is wedged: its lines would be dropped, so traffic should go to
        # pods whose logs keep up (README, Serving: "Limits").
        return self.runtime.ready and not self.runtime.stalled_logs()

    @bentoml.on_shutdown
    def _close_logs(self) -> None:
        self.runtime.close()


class DirectRoutes:
    """ASGI: the API's own paths go straight to the API app; everything else (lifespan, /livez,
    /readyz, /metrics, BentoML's docs) to BentoML's app.

    BentoML wraps every request in its request-metrics, OpenTelemetry, timeout and request-
    context layers, then a mount. py-spy on a single-row /predict: those layers cost more than
    validating and scoring the row. The API counts its own predictions, rejections and scores
    in /metrics and never uses BentoML's request context; with tracing or the access log on,
    requests take BentoML's full path again (`direct_routes`).
    """

    def __init__(self, bentoml_app: Any, api_app: Any, paths: frozenset[str]) -> None:
        self.bentoml_app = bentoml_app
        self.api_app = api_app
        self.paths = paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.api_app(scope, receive, send)
        else:
            await self.bentoml_app(scope, receive, send)


def direct_routes(settings: ServingConfig) -> bool:
    return not (settings.tracing or settings.access_log)


def _count_refused(code: str) -> None:
    """Requests the HTTP layer refused (408, 431, 503), in /metrics' rejected counter."""
    runtime: Runtime | None = api.state.runtime
    if runtime is not None:
        runtime.metrics.child("rejected", code).inc()


_Service = type(FraudDetector)


class _DirectService(_Service):  # type: ignore[misc,valid-type]
    """BentoML's service whose ASGI app is wrapped in DirectRoutes. BentoML builds the app with
    `to_asgi` in each worker and offers no other hook in front of its own layers."""

    __slots__ = ()

    def to_asgi(self, *args: Any, **kwargs: Any) -> Any:
        app = super().to_asgi(*args, **kwargs)
        # The worker's uvicorn starts right after this (and reads its protocol then).
        install_limits(SETTINGS, _count_refused)
        paths = frozenset(route.path for route in api.routes)
        return DirectRoutes(app, api, paths) if direct_routes(SETTINGS) else app


FraudDetector.__class__ = _DirectService
