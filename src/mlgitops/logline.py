"""The prediction-log line: one JSON object per scored row, as the service appends it and the
monitor, `ab status`, the audit and ingest read it. Every writer (the service, the traffic and
experiment simulators) builds its lines with `prediction_line` and every reader parses them with
`arrow_schema`, so the line has one definition.

A line holds, in this order: `id` (the entity id) and `event_time` (the record's own time) when
the request carried them, `request_id`, `row`, `time` (when the service logged it),
`model_version`, `features`, `score`, `label`; then `client_request_id` (the client's
X-Request-ID, for tracing only) and, during an experiment, `arm`, `champion_version`,
`challenger_version`, `unit` (the assignment key's value, when it is not the id) and, in shadow
mode, `challenger_score` and `challenger_label`.

The entity key of a row is its `id`, else `request_id:row` (`request_key`): labels are joined on
it, by id first.

Import-light (pyarrow only inside `arrow_schema`): the serving pod imports this on every worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

ID = "id"
EVENT_TIME = "event_time"
REQUEST_ID = "request_id"
ROW = "row"
TIME = "time"
MODEL_VERSION = "model_version"
FEATURES = "features"
SCORE = "score"
LABEL = "label"
CLIENT_REQUEST_ID = "client_request_id"
ARM = "arm"
CHAMPION_VERSION = "champion_version"
CHALLENGER_VERSION = "challenger_version"
UNIT = "unit"
CHALLENGER_SCORE = "challenger_score"
CHALLENGER_LABEL = "challenger_label"
# The experiment's string fields (null outside an experiment).
EXPERIMENT_STRINGS = (ARM, CHAMPION_VERSION, CHALLENGER_VERSION, UNIT)
REQUEST_KEY_SEPARATOR = ":"


def request_key(request_id: str, row: int) -> str:
    """The key of a row that has no entity id: `request_id:row` (what /feedback names)."""
    return f"{request_id}{REQUEST_KEY_SEPARATOR}{row}"


def split_request_key(key: str) -> tuple[str, int]:
    """`request_key`'s inverse: (request_id, row). Request ids may hold colons; rows do not."""
    request_id, _, row = key.rpartition(REQUEST_KEY_SEPARATOR)
    return request_id, int(row)


def entity_keys(ids: pd.Series, request_keys: pd.Series) -> pd.Series:
    """Each row's entity key: its id, else its `request_id:row`."""
    return ids.where(ids.notna(), request_keys)


class ExperimentFields(NamedTuple):
    """What a line carries during an experiment. `unit_logged`: the assignment key is not the
    id, so `unit` is written (null for a row without a key value); the challenger's score and
    decision are written in shadow mode only. (A NamedTuple: one is built per logged row.)"""

    arm: str
    champion_version: str
    challenger_version: str
    unit_logged: bool = False
    unit: str | None = None
    challenger_score: float | None = None
    challenger_label: int | None = None


def prediction_line(
    *,
    request_id: str,
    row: int,
    time: str,
    model_version: str,
    features: Mapping[str, Any],
    score: float,
    label: int,
    id: Any = None,
    event_time: str | None = None,
    client_request_id: str | None = None,
    experiment: ExperimentFields | None = None,
) -> dict[str, Any]:
    """One line as a dict in the line's key order (orjson keeps it), fields that are None left
    out; `model_version` is the version that answered the row."""
    # One literal, then the unset leading fields deleted (a dict keeps the others' order): the
    # service renders a line per scored row, and this is the cheapest way to build it.
    line: dict[str, Any] = {
        ID: id,
        EVENT_TIME: event_time,
        REQUEST_ID: request_id,
        ROW: row,
        TIME: time,
        MODEL_VERSION: model_version,
        FEATURES: features,
        SCORE: score,
        LABEL: label,
    }
    if id is None:
        del line[ID]
    if event_time is None:
        del line[EVENT_TIME]
    if client_request_id is not None:
        line[CLIENT_REQUEST_ID] = client_request_id
    if experiment is not None:
        line[ARM] = experiment.arm
        line[CHAMPION_VERSION] = experiment.champion_version
        line[CHALLENGER_VERSION] = experiment.challenger_version
        if experiment.unit_logged:
            line[UNIT] = experiment.unit
        if experiment.challenger_score is not None:
            line[CHALLENGER_SCORE] = experiment.challenger_score
        if experiment.challenger_label is not None:
            line[CHALLENGER_LABEL] = experiment.challenger_label
    return line


def arrow_schema(features: Iterable[tuple[str, bool]]) -> pa.Schema:
    """The line as a pyarrow schema, for reading: `features` is (name, numeric) per feature, a
    numeric one read as float64, a categorical one as string. Fields a line lacks read as null;
    fields it has beyond these are ignored."""
    import pyarrow as pa

    struct = [
        pa.field(name, pa.float64() if numeric else pa.string()) for name, numeric in features
    ]
    return pa.schema(
        [
            pa.field(ID, pa.string()),
            pa.field(REQUEST_ID, pa.string()),
            pa.field(ROW, pa.int64()),
            pa.field(TIME, pa.string()),
            pa.field(EVENT_TIME, pa.string()),
            pa.field(MODEL_VERSION, pa.string()),
            pa.field(FEATURES, pa.struct(struct)),
            pa.field(SCORE, pa.float64()),
            pa.field(LABEL, pa.int64()),
            *(pa.field(name, pa.string()) for name in EXPERIMENT_STRINGS),
            pa.field(CHALLENGER_SCORE, pa.float64()),
            pa.field(CHALLENGER_LABEL, pa.int64()),
        ]
    )
