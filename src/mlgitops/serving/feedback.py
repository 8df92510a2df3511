"""POST /feedback: the body a client sends to label an earlier prediction, validated."""

from __future__ import annotations

from typing import Any

from mlgitops.serving.features import ID_RANGE, FieldError, RequestError

# Longest request id accepted, from a client's X-Request-ID header or in a feedback body.
REQUEST_ID_MAX = 128


def _integral(value: object) -> object:
    """1.0 as 1: JSON Schema counts a number with no fraction as an integer, and so do we."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def validate_feedback(
    body: object, max_id_length: int | None = None, max_row: int | None = None
) -> dict[str, Any]:
    """`{"request_id": str, "label": 0|1|true|false, "row": int >= 0 (default 0; below
    `max_row`), "id": the record's entity id (optional, null: none; a string of at most
    `max_id_length` characters or a 64-bit integer; joins the label by id, and the monitor reads
    it)}`. Numbers with no fraction count as integers (1.0 is 1), as in the OpenAPI document."""
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
    label = _integral(body.get("label"))
    if type(label) is bool:
        label = int(label)
    if type(label) is not int or label not in (0, 1):
        message = "label must be 0, 1, true or false"
        raise RequestError(422, [FieldError("wrong_type", message, None, "label")])
    row = _integral(body.get("row", 0))
    if type(row) is not int or row < 0 or (max_row is not None and row >= max_row):
        below = f" below {max_row}" if max_row is not None else ""
        message = f"row must be an integer >= 0{below}"
        raise RequestError(422, [FieldError("wrong_type", message, None, "row")])
    entity = _integral(body.get("id"))
    if entity is not None and type(entity) not in (str, int):
        message = "id must be a string or an integer"
        raise RequestError(422, [FieldError("wrong_type", message, None, "id")])
    if type(entity) is int and not ID_RANGE["minimum"] <= entity <= ID_RANGE["maximum"]:
        message = "id is an integer out of the 64-bit range"
        raise RequestError(422, [FieldError("wrong_type", message, None, "id")])
    if type(entity) is str and max_id_length is not None and len(entity) > max_id_length:
        message = f"id is {len(entity)} characters long; at most {max_id_length} are accepted"
        raise RequestError(422, [FieldError("too_long", message, None, "id")])
    entry = {"request_id": request_id, "row": row, "label": label}
    if entity is not None:
        entry["id"] = entity
    return entry
