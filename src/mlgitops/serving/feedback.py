"""POST /feedback: the body a client sends to label an earlier prediction, validated."""

from __future__ import annotations

from typing import Any

from mlgitops.serving.features import FieldError, RequestError

# Longest request id accepted, from a client's X-Request-ID header or in a feedback body.
REQUEST_ID_MAX = 128


def validate_feedback(body: object) -> dict[str, Any]:
    """`{"request_id": str, "label": 0|1|true|false, "row": int >= 0 (default 0), "id": the
    record's entity id (optional; joins the label by id, and the monitor reads it)}`."""
    if not isinstance(body, dict):
        raise RequestError(400, [FieldError("invalid_body", "body must be a JSON object")])
    unknown = [key for key in body if key not in {"request_id", "label", "row", "id"}]
    if unknown:
        raise RequestError(
            422, [FieldError("unknown_field", f"unknown field {unknown[0]!r}", None, unknown[0])]
        )
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= REQUEST_ID_MAX:
        message = f"request_id must be a string of 1 to {REQUEST_ID_MAX} characters"
        raise RequestError(422, [FieldError("wrong_type", message, None, "request_id")])
    label = body.get("label")
    if type(label) is bool:
        label = int(label)
    if type(label) is not int or label not in (0, 1):
        message = "label must be 0, 1, true or false"
        raise RequestError(422, [FieldError("wrong_type", message, None, "label")])
    row = body.get("row", 0)
    if type(row) is not int or row < 0:
        raise RequestError(
            422, [FieldError("wrong_type", "row must be an integer >= 0", None, "row")]
        )
    entity = body.get("id")
    if entity is not None and type(entity) not in (str, int):
        message = "id must be a string or an integer"
        raise RequestError(422, [FieldError("wrong_type", message, None, "id")])
    entry = {"request_id": request_id, "row": row, "label": label}
    if entity is not None:
        entry["id"] = entity
    return entry
