"""The prediction-log line's one definition: what the builder writes, the schema reads back."""

from __future__ import annotations

import io

import orjson
import pandas as pd
import pyarrow.json as pajson

from mlgitops import logline
from mlgitops.logline import ExperimentFields, prediction_line

FEATURES = [("amount", True), ("country", False)]


def _line(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "request_id": "r1",
        "row": 2,
        "time": "2025-07-01T00:00:00.000+00:00",
        "model_version": "fraud-detector:abc",
        "features": {"amount": 12.5, "country": "DE"},
        "score": 0.25,
        "label": 0,
    }
    return prediction_line(**{**base, **extra})  # type: ignore[arg-type]


def test_a_plain_line_has_the_service_fields_in_order_and_nothing_unset() -> None:
    assert list(_line()) == [
        "request_id", "row", "time", "model_version", "features", "score", "label",
    ]  # fmt: skip
    assert orjson.dumps(
        _line(id="t1", event_time="2025-07-01T00:00:00Z", client_request_id="c")
    ) == (
        b'{"id":"t1","event_time":"2025-07-01T00:00:00Z","request_id":"r1","row":2,'
        b'"time":"2025-07-01T00:00:00.000+00:00","model_version":"fraud-detector:abc",'
        b'"features":{"amount":12.5,"country":"DE"},"score":0.25,"label":0,"client_request_id":"c"}'
    )


def test_experiment_fields_follow_and_a_logged_unit_may_be_null() -> None:
    fields = ExperimentFields("challenger", "v:a", "v:b", unit_logged=True, unit=None)
    line = _line(experiment=fields)
    assert list(line)[-4:] == ["arm", "champion_version", "challenger_version", "unit"]
    assert line["unit"] is None
    shadow = ExperimentFields("champion", "v:a", "v:b", challenger_score=0.0, challenger_label=0)
    line = _line(experiment=shadow)
    assert "unit" not in line  # the key is the id: the unit is the id
    # A zero score and decision are written: only None means "not in this mode".
    assert (line["challenger_score"], line["challenger_label"]) == (0.0, 0)


def test_the_schema_reads_every_field_the_builder_writes() -> None:
    experiment = ExperimentFields(
        "challenger", "v:a", "v:b", unit_logged=True, unit="DE", challenger_score=0.5,
        challenger_label=1,
    )  # fmt: skip
    lines = [
        _line(id="t1", event_time="2025-07-01T00:00:00Z", experiment=experiment),
        _line(features={"amount": None, "country": None}),
    ]
    data = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    schema = logline.arrow_schema(FEATURES)
    # "error": a field the builder writes and the schema lacks would fail the read (the client's
    # X-Request-ID is for tracing only: the reader ignores it).
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    table = pajson.read_json(io.BytesIO(data), parse_options=options)
    first, second = table.to_pylist()
    assert first == {
        "id": "t1", "request_id": "r1", "row": 2, "time": "2025-07-01T00:00:00.000+00:00",
        "event_time": "2025-07-01T00:00:00Z", "model_version": "fraud-detector:abc",
        "features": {"amount": 12.5, "country": "DE"}, "score": 0.25, "label": 0,
        "arm": "challenger", "champion_version": "v:a", "challenger_version": "v:b", "unit": "DE",
        "challenger_score": 0.5, "challenger_label": 1,
    }  # fmt: skip
    assert (second["id"], second["arm"]) == (None, None)
    assert second["features"] == {"amount": None, "country": None}


def test_the_request_key_rule() -> None:
    assert logline.request_key("a:b", 3) == "a:b:3"
    assert logline.split_request_key("a:b:3") == ("a:b", 3)
    ids = pd.Series(["t1", None, None], dtype=object)
    requests = pd.Series(["r:0", "r:1", None], dtype=object)
    assert logline.entity_keys(ids, requests).tolist() == ["t1", "r:1", None]
