"""DirectRoutes: the API's paths skip BentoML's per-request layers; everything else does not."""

from __future__ import annotations

import asyncio
from typing import Any

from mlgitops.config import ServingConfig
from mlgitops.serving import service


def _app(name: str, calls: list[tuple[str, str]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append((name, scope.get("path", scope["type"])))

    return app


def test_api_paths_go_to_the_api_and_the_rest_to_bentoml() -> None:
    calls: list[tuple[str, str]] = []
    paths = frozenset(route.path for route in service.api.routes)
    app = service.DirectRoutes(_app("bentoml", calls), _app("api", calls), paths)
    for scope in (
        {"type": "http", "path": "/predict"},
        {"type": "http", "path": "/metadata"},
        {"type": "http", "path": "/readyz"},
        {"type": "http", "path": "/metrics"},
        {"type": "lifespan"},
    ):
        asyncio.run(app(scope, None, None))
    assert calls == [
        ("api", "/predict"),
        ("api", "/metadata"),
        ("bentoml", "/readyz"),
        ("bentoml", "/metrics"),
        ("bentoml", "lifespan"),
    ]
    assert {"/predict", "/feedback", "/schema", "/openapi.json", "/metadata"} <= paths


def test_tracing_or_the_access_log_take_bentomls_full_path() -> None:
    assert service.direct_routes(ServingConfig())
    assert not service.direct_routes(ServingConfig(tracing=True))
    assert not service.direct_routes(ServingConfig(access_log=True))


def test_the_service_still_builds_bentomls_app_inside() -> None:
    assert isinstance(service.FraudDetector, service._Service)
    assert service.FraudDetector.name == "fraud-detector"
