"""The OpenAPI document of the API, written by hand: the routes bypass BentoML's IO layer (for
speed and per-row errors), so BentoML cannot generate it."""

from __future__ import annotations

from typing import Any

from mlgitops.serving.auth import REQUEST_ID_PATTERN
from mlgitops.serving.features import ERROR_CODES
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
    request: dict[str, Any], version: str, read_token: bool = False
) -> dict[str, Any]:
    """OpenAPI 3.1 for the API, with `request` (the /predict body's JSON Schema, generated from
    the reference profile) for clients and schema-driven fuzzers such as schemathesis.
    `read_token`: the server has a predict token, which the read routes then require."""
    error = {"application/json": {"schema": _ERROR_SCHEMA}}
    reads: dict[str, Any] = {"security": [{"predictToken": []}]} if read_token else {}
    refused = {"401": {"content": error}} if read_token else {}
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
            "row": {"type": "integer", "minimum": 0, "default": 0},
            "label": {"oneOf": [{"type": "integer", "enum": [0, 1]}, {"type": "boolean"}]},
            "id": {
                "type": ["string", "integer"],
                "description": "entity id of the row, checked against the one served",
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
                    **reads,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request}},
                    },
                    "responses": {
                        "200": {"content": {"application/json": {"schema": prediction}}},
                        "400": {"content": error},
                        **refused,
                        "413": {"content": error},
                        "422": {"content": error},
                        "503": {"content": error},
                    },
                }
            },
            "/feedback": {
                "post": {
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
                            for status in ("400", "401", "403", "409", "413", "422", "503")
                        },
                    },
                }
            },
            "/metadata": {
                "get": {**reads, "responses": {"200": {}, **refused, "503": {"content": error}}}
            },
            "/schema": {
                "get": {**reads, "responses": {"200": {}, **refused, "503": {"content": error}}}
            },
        },
        "components": {
            "securitySchemes": {
                "predictToken": {"type": "http", "scheme": "bearer"},
                "feedbackToken": {"type": "http", "scheme": "bearer"},
            }
        },
    }
