"""The HTTP API (/predict, /metadata, /feedback, /schema, /openapi.json) as a plain Starlette app.

The BentoML service mounts this app; BentoML itself answers /livez, /readyz and /metrics and wraps
everything in its request metrics. Handling the body here, with orjson and the profile-derived
validator, skips pydantic model building per request and lets every error name its row and field.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from mlgitops.config import ServingConfig
from mlgitops.serving.features import FieldError, RequestError, invalid_unicode, validate_body
from mlgitops.serving.feedback import ACCEPTED, REQUEST_ID_MAX, validate_feedback
from mlgitops.serving.limits import max_body_bytes
from mlgitops.serving.openapi import openapi_document
from mlgitops.serving.runtime import Runtime, isotime

if TYPE_CHECKING:
    from mlgitops.serving.experiment import ExperimentScores

# Batches above this size are scored in a worker thread so /livez stays responsive meanwhile.
THREAD_OFFLOAD_ROWS = 256
_LONG_DIGITS = re.compile(rb"\d{19}")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(runtime: Runtime | None, error: RequestError) -> Response:
    if runtime is not None:
        runtime.metrics.child("rejected", error.errors[0].code).inc()
    return _json(error.body(), error.status, error.headers)


def _unauthorized(runtime: Runtime, realm: str, message: str) -> Response:
    runtime.metrics.child("rejected", "unauthorized").inc()
    return _json(
        {"error": "unauthorized", "message": message, "detail": []},
        401,
        headers={"www-authenticate": f'Bearer realm="{realm}"'},
    )


def _credentials_broken(runtime: Runtime) -> Response | None:
    """503 while a credential file named in the settings cannot be used: the worker answers
    nothing it would have to guard with it (it never turns ready either)."""
    if runtime.credential_error is None:
        return None
    return _json({"error": "not_ready", "message": runtime.credential_error, "detail": []}, 503)


def _read_refused(request: Request, runtime: Runtime | None) -> Response | None:
    """401 unless the request may read (/predict, /metadata, /schema, /openapi.json): with a
    predict token set, only with it."""
    if runtime is None:
        return None
    if broken := _credentials_broken(runtime):
        return broken
    if runtime.credentials.may_read(request.headers.get("authorization")):
        return None
    message = "missing or wrong bearer token: this server's reads take its predict token"
    return _unauthorized(runtime, "predict", message)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            size = -1
        if size < 0:
            raise RequestError(400, [FieldError("invalid_body", "bad Content-Length header")])
        if size > limit:
            message = f"body of {size} bytes is larger than the maximum of {limit}"
            raise RequestError(413, [FieldError("body_too_large", message)])
        return await request.body()
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            message = f"body is larger than the maximum of {limit} bytes"
            raise RequestError(413, [FieldError("body_too_large", message)])
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes) -> Any:
    if not body:
        raise RequestError(400, [FieldError("invalid_json", "empty body; expected JSON")])
    # orjson reads an integer beyond 64 bits as a float, silently rounded: an id 2**64 would
    # become another id. With 19 digits in a row somewhere, the standard parser reads the body.
    if _LONG_DIGITS.search(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    # orjson refuses NaN and Infinity tokens; the standard parser reads them so the validator
    # can name the row and field that carries one. It also reads lone UTF-16 surrogates
    # ("\\ud800"), which orjson refuses and no log line or answer could carry: refused here,
    # naming the row and field.
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        message = f"body is not valid JSON: {str(error)[:200]}"
        raise RequestError(400, [FieldError("invalid_json", message)]) from None
    problem = invalid_unicode(document)
    if problem is not None:
        raise RequestError(422, [problem])
    return document


async def _loaded_runtime(request: Request) -> Runtime | None:
    """The worker's Runtime once its model has loaded (or failed to), waiting for that at most
    `load_wait_seconds`: the pod turns ready when one worker is, and a request that reaches
    another worker still loading should be answered late, not refused."""
    runtime: Runtime | None = request.app.state.runtime
    if runtime is not None and runtime.loaded.is_set():
        return runtime
    wait = (
        runtime.settings.load_wait_seconds
        if runtime is not None
        else ServingConfig.model_fields["load_wait_seconds"].default
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        runtime = request.app.state.runtime
        if runtime is not None and runtime.loaded.is_set():
            break
    return runtime


def _id_limit(settings: ServingConfig) -> int | None:
    return settings.max_id_length if settings.limits else None


def _client_request_id(request: Request) -> str | None:
    """The client's X-Request-ID, kept for tracing (logged, echoed), never a join key."""
    given = request.headers.get("x-request-id")
    if given and len(given) <= REQUEST_ID_MAX and given.isprintable():
        return given
    return None


def _id_headers(request_id: str, client_request_id: str | None) -> dict[str, str]:
    # X-Request-ID echoes the client's own, as tracing expects; the body's request_id (the key
    # /feedback takes) is this service's.
    return {"x-request-id": client_request_id or request_id}


def _predictions(scores: list[float], labels: list[int], ids: list[Any] | None) -> list[dict]:
    if ids is not None:
        return [
            {"score": s, "label": lab, "id": i}
            for s, lab, i in zip(scores, labels, ids, strict=True)
        ]
    return [{"score": s, "label": lab} for s, lab in zip(scores, labels, strict=True)]


async def _predict_experiment(
    request: Request, runtime: Runtime, batch: Any, experiment: Any, model: Any
) -> Response:
    """/predict under an experiment (serving.experiment): rows assigned by the hash of their
    key; in ab mode each answered by its arm's model (and says which), in shadow mode by the
    champion while the challenger's scores go to the log only."""
    from mlgitops.serving.experiment import score_experiment

    challenger = runtime.challenger
    if challenger is None:  # never: the worker turns ready only after loading it
        return _json({"error": "not_ready", "message": "challenger not loaded", "detail": []}, 503)
    args = (experiment, model, challenger, batch, runtime.reuse_columns)
    if len(batch) > THREAD_OFFLOAD_ROWS:
        import anyio.to_thread

        scored = await anyio.to_thread.run_sync(score_experiment, *args)
    else:
        scored = score_experiment(*args)
    return _answer(request, runtime, batch, scored.scores, scored.labels, scored)


def _answer(
    request: Request,
    runtime: Runtime,
    batch: Any,
    scores: np.ndarray,
    labels: list[int],
    experiment: ExperimentScores | None = None,
) -> Response:
    """The answer to a scored /predict, either route, and its bookkeeping (Runtime.record). In
    ab mode each prediction says which arm, and which version, answered it."""
    answered = scores.tolist()
    request_id = runtime.new_request_id(len(batch))
    client_request_id = _client_request_id(request)
    predictions = _predictions(answered, labels, batch.ids)
    pin = runtime.experiment
    if experiment is not None and pin is not None and pin.mode == "ab":
        versions = {"champion": runtime.pinned.bento_tag, "challenger": pin.challenger_bento_tag}
        for prediction, arm in zip(predictions, experiment.arms, strict=True):
            prediction["arm"] = arm
            prediction["model_version"] = versions.get(arm, runtime.pinned.bento_tag)
    response = _json(
        {
            "predictions": predictions,
            "model_version": runtime.pinned.bento_tag,
            "request_id": request_id,
        },
        headers=_id_headers(request_id, client_request_id),
    )
    runtime.record(
        batch, scores, answered, labels, request_id, client_request_id, experiment=experiment
    )
    return response


def create_app() -> Starlette:
    """The API app. Its `state.runtime` is the worker's Runtime, set by the service instance of
    that worker (`FraudDetector.__init__`); None until then."""

    def not_ready(runtime: Runtime | None) -> Response:
        detail = runtime.error if runtime is not None and runtime.error else "model is loading"
        return _json({"error": "not_ready", "message": detail, "detail": []}, 503)

    async def predict(request: Request) -> Response:
        # Credentials are checked before waiting for the model or reading the body.
        if refused := _read_refused(request, request.app.state.runtime):
            return refused
        runtime = await _loaded_runtime(request)
        if refused := _read_refused(request, runtime):
            return refused
        if runtime is None or runtime.model is None:
            return not_ready(runtime)
        model = runtime.model
        settings = runtime.settings
        try:
            limit = max_body_bytes(settings.max_batch_size)
            body = _decode(await _read_body(request, limit))
            batch = validate_body(body, model.space, settings.max_batch_size)
        except RequestError as error:
            return _error(runtime, error)
        except ClientDisconnect:
            return Response(status_code=400)
        experiment = runtime.experiment
        if experiment is not None:
            try:
                return await _predict_experiment(request, runtime, batch, experiment, model)
            except RequestError as error:
                return _error(runtime, error)
        if len(batch) > THREAD_OFFLOAD_ROWS:
            import anyio.to_thread

            scores_array = await anyio.to_thread.run_sync(model.scores, batch)
        else:
            scores_array = model.scores(batch)
        labels = (scores_array >= model.threshold).astype(np.int8).tolist()
        return _answer(request, runtime, batch, scores_array, labels)

    async def metadata(request: Request) -> Response:
        runtime: Runtime | None = request.app.state.runtime
        if runtime is None:
            return not_ready(runtime)
        if refused := _read_refused(request, runtime):
            return refused
        return _json(runtime.metadata())

    # The schema and the OpenAPI document take the read credential too: they list the model's
    # inputs and categories seen in training, which only a client allowed to predict needs.
    async def schema(request: Request) -> Response:
        if refused := _read_refused(request, request.app.state.runtime):
            return refused
        runtime = await _loaded_runtime(request)
        if refused := _read_refused(request, runtime):
            return refused
        if runtime is None or runtime.model is None:
            return not_ready(runtime)
        return _json(runtime.model.space.json_schema(runtime.settings.max_batch_size))

    async def openapi(request: Request) -> Response:
        if refused := _read_refused(request, request.app.state.runtime):
            return refused
        runtime = await _loaded_runtime(request)
        if refused := _read_refused(request, runtime):
            return refused
        if runtime is None or runtime.model is None:
            return not_ready(runtime)
        space, settings = runtime.model.space, runtime.settings
        request_schema = space.json_schema(settings.max_batch_size)
        document = openapi_document(
            request_schema,
            runtime.pinned.bento_tag,
            _id_limit(settings),
            settings.max_batch_size,
            read_token=runtime.credentials.predict is not None,
        )
        return _json(document)

    async def feedback(request: Request) -> Response:
        runtime: Runtime | None = request.app.state.runtime
        if runtime is None:
            return not_ready(runtime)
        # Credentials first: an anonymous body is never read.
        if broken := _credentials_broken(runtime):
            return broken
        if runtime.credentials.feedback is None:
            message = (
                "this server takes no labels: it has no feedback token "
                f"({ServingConfig.env_name('feedback_token_file')} is not set)"
            )
            error = RequestError(403, [FieldError("feedback_not_configured", message)])
            return _error(runtime, error)
        if not runtime.credentials.may_write_feedback(request.headers.get("authorization")):
            message = "missing or wrong bearer token: /feedback takes the feedback token"
            return _unauthorized(runtime, "feedback", message)
        try:
            body = _decode(await _read_body(request, 65536))
            settings = runtime.settings
            entry = validate_feedback(body, _id_limit(settings), settings.max_batch_size)
        except RequestError as error:
            return _error(runtime, error)
        except ClientDisconnect:
            return Response(status_code=400)
        if not runtime.feedback_log.enabled:
            message = "the feedback log is off"
            return _json({"error": "feedback_unavailable", "message": message, "detail": []}, 503)
        line: dict[str, Any] = {
            "time": isotime(time.time()),
            "model_version": runtime.pinned.bento_tag,
        }
        if (client_request_id := _client_request_id(request)) is not None:
            line["client_request_id"] = client_request_id
        try:
            status = await runtime.feedback.record(entry, line)
        except RequestError as error:
            return _error(runtime, error)
        # The outcome of the prediction is never told: the label's sender may not be the
        # client that asked for it.
        answer = {"status": status, "request_id": entry["request_id"]}
        return _json(answer, 202 if status == ACCEPTED else 200)

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/metadata", metadata, methods=["GET"]),
            Route("/schema", schema, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/feedback", feedback, methods=["POST"]),
        ]
    )
    app.state.runtime = None
    return app
