"""POST /feedback: the body a client sends to label an earlier prediction, validated, and the
label recorded: joined only to a prediction this service made, once per row, written before it is
acknowledged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgitops.serving.features import ID_RANGE, FieldError, RequestError

if TYPE_CHECKING:
    from mlgitops.serving.auth import RequestIds
    from mlgitops.serving.metrics import ServingMetrics
    from mlgitops.serving.online import RecentPredictions
    from mlgitops.serving.predlog import JsonLinesLog

# Longest request id accepted, from a client's X-Request-ID header or in a feedback body.
REQUEST_ID_MAX = 128
# How long /feedback waits for its line to be written before answering 503.
WRITE_WAIT_SECONDS = 10.0
ACCEPTED = "accepted"
ALREADY_RECORDED = "already_recorded"


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
    `max_id_length` characters or a 64-bit integer; checked against the row's id where this
    worker holds the prediction; never a join key)}`. Numbers with no fraction count as integers
    (1.0 is 1), as in the OpenAPI document."""
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
    if type(row) is not int or row < 0:
        message = "row must be an integer >= 0"
        raise RequestError(422, [FieldError("wrong_type", message, None, "row")])
    if max_row is not None and row >= max_row:
        # No request has that many rows (the batch limit): refused before any id is checked.
        message = f"row {row} is beyond the rows of any request (at most {max_row})"
        raise RequestError(422, [FieldError("row_out_of_range", message, None, "row")])
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


def outcome(predicted: int, actual: int) -> str:
    """tp/fp/tn/fn of a served label against the true one."""
    if predicted:
        return "tp" if actual else "fp"
    return "fn" if actual else "tn"


@dataclass
class FeedbackDesk:
    """Records labels: the request id must carry this service's signature and the row be within
    its request; where this worker holds the prediction, the label is joined to it (counted in
    labelled_outcome once per row: a repeat is acknowledged and not counted, a different label
    is a conflict) and the row's served entity id is what the log records. The line is written
    before the label is acknowledged, so an acknowledged label is never lost."""

    request_ids: RequestIds
    recent: RecentPredictions
    log: JsonLinesLog
    metrics: ServingMetrics
    # Writes in flight by (request id, row): a second label for the row waits for the first.
    _writing: dict[tuple[str, int], asyncio.Future[bool]] | None = None

    async def record(
        self, entry: dict[str, Any], line: dict[str, Any], wait: float = WRITE_WAIT_SECONDS
    ) -> str:
        """ACCEPTED or ALREADY_RECORDED; RequestError for a label refused. `entry` is the
        validated body, `line` the fields the log line gets beside it (time, model version)."""
        request_id, row, label = entry["request_id"], entry["row"], entry["label"]
        rows = self.request_ids.verify(request_id)
        if rows is None:
            message = "request_id is not one this service issued (its signature does not verify)"
            if not self.request_ids.shared:
                message += "; this server has no shared request id key, so only the worker "
                message += "that served the prediction accepts its labels"
            raise RequestError(403, [FieldError("request_id_unknown", message, None, "request_id")])
        if row >= rows:
            message = f"row {row} is beyond the {rows} rows of request {request_id}"
            raise RequestError(422, [FieldError("row_out_of_range", message, None, "row")])
        if self._writing is None:
            self._writing = {}
        key = (request_id, row)
        while (writing := self._writing.get(key)) is not None:
            await asyncio.shield(writing)
            if self._writing.get(key) is writing:
                await asyncio.sleep(0)  # its writer has yet to run its `finally`
        served = self.recent.get(request_id)
        if served is not None:
            before = served.recorded_label(row)
            if before == label:
                return ALREADY_RECORDED
            if before is not None:
                message = (
                    f"row {row} of request {request_id} is labelled {before} already; labels are "
                    "not changed here (a labels file corrects them: README, Serving)"
                )
                raise RequestError(409, [FieldError("label_conflict", message, None, "label")])
        record = {**entry, **line}
        given = record.pop("id", None)
        if served is not None:
            entity = served.entity(row)
            if given is not None and given != entity:
                shown = "no id" if entity is None else "another id"
                message = f"id {given!r} is not the id of row {row} of that request ({shown})"
                raise RequestError(422, [FieldError("id_mismatch", message, None, "id")])
            if entity is not None:
                record["id"] = entity
        elif given is not None:
            # Not checkable here (another worker served it): kept for tracing, never joined on.
            record["client_id"] = given
        written = await self._write(key, record, wait)
        if not written:
            reason = self.log.error or "the write did not complete in time"
            message = f"the label was not stored ({reason}); retry later"
            raise RequestError(
                503, [FieldError("feedback_unavailable", message)], {"retry-after": "1"}
            )
        self.metrics.child("feedback", str(label)).inc()
        if served is None:
            self.metrics.child("feedback_joined", "not_joined").inc()
            return ACCEPTED
        served.record(row, label)
        self.metrics.child("feedback_joined", "joined").inc()
        self.metrics.child("labelled_outcome", outcome(served.labels[row], label)).inc()
        return ACCEPTED

    async def _write(self, key: tuple[str, int], record: dict[str, Any], wait: float) -> bool:
        assert self._writing is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def settle(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        if not self.log.submit(record, on_done=lambda ok: loop.call_soon_threadsafe(settle, ok)):
            if self.log.error:
                message = f"the feedback log cannot be written ({self.log.error}); retry later"
                raise RequestError(
                    503, [FieldError("feedback_unavailable", message)], {"retry-after": "1"}
                )
            message = "feedback queue is full; retry later"
            raise RequestError(503, [FieldError("feedback_busy", message)], {"retry-after": "1"})
        self._writing[key] = done
        try:
            return await asyncio.wait_for(asyncio.shield(done), wait)
        except TimeoutError:
            return False
        finally:
            self._writing.pop(key, None)
            settle(False)
