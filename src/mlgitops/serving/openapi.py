"""The OpenAPI document of the API, written by hand: the routes bypass BentoML's IO layer (for
speed and per-row errors), so BentoML cannot generate it."""

from __future__ import annotations

from typing import Any

from mlgitops.serving.features import ERROR_CODES, ID_RANGE
from mlgitops.serving.feedback import REQUEST_ID_MAX

_CODE: dict[str, Any] = {"type": "string", "enum": sorted(ERROR_CODES)}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message", "detail"],
    "properties": {
        # What went wrong, one of ERROR_CODES (README, Serving: what each means).
        "error": _CODE,
        "message": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "code": _CODE,
                    "message": {"type": "string"},
                    "row": {"type": ["integer", "null"]},
                    "field": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def openapi_document(
    request: dict[str, Any],
    version: str,
    max_id_length: int | None = None,
    max_batch_size: int | None = None,
) -> dict[str, Any]:
    """OpenAPI 3.1 for the API, with `request` (the /predict body's JSON Schema, generated from
    the reference profile) for clients and schema-driven fuzzers such as schemathesis; ids of
    at most `max_id_length` characters, feedback rows below `max_batch_size`."""
    error = {"application/json": {"schema": _ERROR_SCHEMA}}
    # The HTTP layer (mlgitops.serving.limits) answers these on any path: a head too large
    # (431) or too slow, a body too slow (408), too many requests in progress (503).
    limits = {status: {"content": error} for status in ("408", "431", "503")}
    prediction = {
        "type": "object",
        "required": ["predictions", "model_version", "request_id"],
        "properties": {
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["score", "label"],
                    "properties": {
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                        "label": {"type": "integer", "enum": [0, 1]},
                        # The record's id column, when the data has one (null if not sent).
                        "id": {"type": ["string", "integer", "null"]},
                    },
                },
            },
            "model_version": {"type": "string"},
            "request_id": {"type": "string"},
        },
    }
    feedback = {
        "type": "object",
        "required": ["request_id", "label"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": REQUEST_ID_MAX},
            "row": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                **({"maximum": max_batch_size - 1} if max_batch_size else {}),
            },
            "label": {"oneOf": [{"type": "integer", "enum": [0, 1]}, {"type": "boolean"}]},
            "id": {
                "type": ["string", "integer", "null"],
                "description": "entity id of the record (null: none)",
                # minimum/maximum bound integer ids only, maxLength string ones.
                **ID_RANGE,
                **({"maxLength": max_id_length} if max_id_length else {}),
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlgitops fraud detector", "version": version},
        "paths": {
            "/predict": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request}},
                    },
                    "responses": {
                        "200": {"content": {"application/json": {"schema": prediction}}},
                        "400": {"content": error},
                        "413": {"content": error},
                        "422": {"content": error},
                        **limits,
                    },
                }
            },
            "/feedback": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": feedback}},
                    },
                    "responses": {
                        "202": {},
                        **{status: {"content": error} for status in ("400", "413", "422")},
                        **limits,
                    },
                }
            },
            "/metadata": {"get": {"responses": {"200": {}, **limits}}},
            "/schema": {"get": {"responses": {"200": {}, **limits}}},
        },
    }
