"""The OpenAPI document of the API, written by hand: the routes bypass BentoML's IO layer (for
speed and per-row errors), so BentoML cannot generate it."""

from __future__ import annotations

from typing import Any

from mlgitops.serving.auth import REQUEST_ID_PATTERN
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
    read_token: bool = False,
) -> dict[str, Any]:
    """OpenAPI 3.1 for the API, with `request` (the /predict body's JSON Schema, generated from
    the reference profile) for clients and schema-driven fuzzers such as schemathesis; ids of
    at most `max_id_length` characters, feedback rows below `max_batch_size`. `read_token`: the
    server has a predict token, which the read routes then require."""
    error = {"application/json": {"schema": _ERROR_SCHEMA}}
    reads: dict[str, Any] = {"security": [{"predictToken": []}]} if read_token else {}
    refused = {"401": {"content": error}} if read_token else {}
    # The HTTP layer (mlgitops.serving.limits) answers these on any path: a head too large
    # (431) or too slow, a body too slow (408), too many requests in progress (503); 503 is
    # also a server not ready (or whose credential files are unusable).
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
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": REQUEST_ID_MAX,
                "pattern": REQUEST_ID_PATTERN,
                "description": "the request_id /predict answered (signed by this service)",
            },
            "row": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                **({"maximum": max_batch_size - 1} if max_batch_size else {}),
            },
            "label": {"oneOf": [{"type": "integer", "enum": [0, 1]}, {"type": "boolean"}]},
            "id": {
                "type": ["string", "integer", "null"],
                "description": "entity id of the row, checked against the one served (null: none)",
                # minimum/maximum bound integer ids only, maxLength string ones.
                **ID_RANGE,
                **({"maxLength": max_id_length} if max_id_length else {}),
            },
        },
    }
    acknowledged = {
        "type": "object",
        "required": ["status", "request_id"],
        "properties": {
            "status": {"type": "string", "enum": ["accepted", "already_recorded"]},
            "request_id": {"type": "string"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlgitops fraud detector", "version": version},
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    **reads,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request}},
                    },
                    "responses": {
                        "200": {
                            "content": {"application/json": {"schema": prediction}},
                            # What /feedback takes to label the first row: clients (and
                            # schemathesis's stateful phase) follow it.
                            "links": {
                                "label": {
                                    "operationId": "feedback",
                                    "requestBody": {
                                        "request_id": "$response.body#/request_id",
                                        "row": 0,
                                        "id": "$response.body#/predictions/0/id",
                                    },
                                }
                            },
                        },
                        "400": {"content": error},
                        **refused,
                        "413": {"content": error},
                        "422": {"content": error},
                        **limits,
                    },
                }
            },
            "/feedback": {
                "post": {
                    "operationId": "feedback",
                    "security": [{"feedbackToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": feedback}},
                    },
                    "responses": {
                        # 202: stored; 200: this label was stored for the row already.
                        "200": {"content": {"application/json": {"schema": acknowledged}}},
                        "202": {"content": {"application/json": {"schema": acknowledged}}},
                        **{
                            status: {"content": error}
                            for status in ("400", "401", "403", "409", "413", "422")
                        },
                        **limits,
                    },
                }
            },
            "/metadata": {
                "get": {
                    "operationId": "metadata",
                    **reads,
                    "responses": {"200": {}, **refused, **limits},
                }
            },
            "/schema": {
                "get": {
                    "operationId": "schema",
                    **reads,
                    "responses": {"200": {}, **refused, **limits},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "predictToken": {"type": "http", "scheme": "bearer"},
                "feedbackToken": {"type": "http", "scheme": "bearer"},
            }
        },
    }
