"""The request schema derived from the profile, and validation of /predict bodies."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mlgitops.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlgitops.serving.features import ERROR_CODES, FeatureSpace, RequestError, validate_body


def _profile() -> ReferenceProfile:
    numeric = {"count": 10, "min": 0.0, "max": 9.0, "mean": 4.5, "std": 3.0, "bin_edges": [4.5]}
    return ReferenceProfile(
        n_rows=10,
        target="is_fraud",
        positive_class="1",
        label_rate=0.1,
        features={
            "amount": NumericProfile(missing_rate=0.0, bin_fractions=[0.5, 0.5], **numeric),
            "age": NumericProfile(missing_rate=0.2, bin_fractions=[0.5, 0.5], **numeric),
            "country": CategoricalProfile(
                count=10, missing_rate=0.0, frequencies={"DE": 0.7, "FR": 0.3}
            ),
            "os": CategoricalProfile(count=10, missing_rate=0.1, frequencies={"ios": 1.0}),
        },
    )


SPACE = FeatureSpace.from_profile(_profile())


def _record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"amount": 1.5, "age": 30, "country": "DE", "os": "ios"}
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not _DROP}


_DROP = object()


def _error(body: object, max_batch: int = 10) -> RequestError:
    with pytest.raises(RequestError) as caught:
        validate_body(body, SPACE, max_batch)
    return caught.value


def test_space_follows_profile_order_and_missingness() -> None:
    assert SPACE.names == ["amount", "age", "country", "os"]
    assert [f.allows_missing for f in SPACE.features] == [False, True, False, True]
    schema = SPACE.json_schema(10)
    record = schema["properties"]["records"]["items"]
    assert record["required"] == ["amount", "country"]
    assert record["additionalProperties"] is False
    assert schema["properties"]["records"]["maxItems"] == 10


def test_valid_batch_columns_and_counts() -> None:
    batch = validate_body(
        {"records": [_record(), _record(age=None, os=_DROP, country="XX"), _record(country=7)]},
        SPACE,
        10,
    )
    assert batch.columns[0] == [1.5, 1.5, 1.5]
    assert batch.columns[1][0] == 30.0
    assert math.isnan(batch.columns[1][1])
    assert batch.columns[2] == ["DE", "XX", "7"]
    assert batch.columns[3] == ["ios", None, "ios"]
    assert batch.missing == {"age": 1, "os": 1}
    assert batch.unseen == {"country": 2}


@pytest.mark.parametrize(
    ("body", "status", "code", "row", "field"),
    [
        ({"records": [_record(amount=_DROP)]}, 422, "missing_feature", 0, "amount"),
        ({"records": [_record(), _record(amount=None)]}, 422, "null_not_allowed", 1, "amount"),
        ({"records": [_record(), _record(), _record(extra=1)]}, 422, "unknown_feature", 2, "extra"),
        ({"records": [_record(amount="12")]}, 422, "wrong_type", 0, "amount"),
        ({"records": [_record(amount=True)]}, 422, "wrong_type", 0, "amount"),
        ({"records": [_record(country=[1])]}, 422, "wrong_type", 0, "country"),
        ({"records": [_record(amount=math.nan)]}, 422, "not_finite", 0, "amount"),
        ({"records": [_record(), _record(age=math.inf)]}, 422, "not_finite", 1, "age"),
        ({"records": [_record(amount=-math.inf)]}, 422, "not_finite", 0, "amount"),
        ({"records": [_record(amount=10**400)]}, 422, "not_finite", 0, "amount"),
        ({"records": [_record(country=math.nan)]}, 422, "not_finite", 0, "country"),
        ({"records": [_record(), "x"]}, 422, "invalid_record", 1, None),
        ({"records": []}, 422, "empty_batch", None, "records"),
        ({"records": [_record()] * 11}, 413, "batch_too_large", None, "records"),
        ({"records": {"a": 1}}, 422, "wrong_type", None, "records"),
        ({}, 422, "missing_field", None, "records"),
        ({"records": [_record()], "x": 1}, 422, "unknown_field", None, "x"),
        ([1, 2], 400, "invalid_body", None, None),
        (_record(), 422, "records_not_wrapped", None, None),
        ({"amount": 12.5}, 422, "records_not_wrapped", None, None),
        ([_record(), _record()], 422, "records_not_wrapped", None, None),
        ({"x": 1}, 422, "unknown_field", None, "x"),
    ],
)
def test_invalid_bodies_name_row_and_field(
    body: object, status: int, code: str, row: int | None, field: str | None
) -> None:
    error = _error(body)
    assert error.status == status
    first = error.body()["detail"][0]
    assert (first["code"], first["row"], first["field"]) == (code, row, field)
    assert error.body()["error"] == code
    assert ERROR_CODES[code] == status  # the status the README and OpenAPI document state


def test_a_bare_record_is_told_to_be_wrapped() -> None:
    record = _error(_record()).body()
    assert record["error"] == "records_not_wrapped"
    assert record["message"] == 'the body is one record: wrap records in {"records": [...]}'
    array = _error([_record()]).body()
    assert array["message"] == 'the body is an array of records: wrap them in {"records": [...]}'
    assert '{"records": [...]}' in _error("text").body()["message"]


def test_errors_are_bounded() -> None:
    error = _error({"records": [_record(amount="x")] * 10})
    assert len(error.errors) == 10
    error = _error({"records": [{"a": 1, "b": 2}] * 10})
    assert len(error.errors) == 20


PASSTHROUGH = SPACE.with_passthrough("tx_id", "ts", ("tx_id", "ts", "merchant_name"))


def test_id_time_and_dropped_columns_are_accepted_but_not_features() -> None:
    records = [
        _record(tx_id="tx_1", ts="2025-01-01T00:00:00Z", merchant_name="Shop"),
        _record(tx_id=7, ts=None),
        _record(),
    ]
    batch = validate_body({"records": records}, PASSTHROUGH, 10)
    assert batch.ids == ["tx_1", 7, None]
    assert batch.event_times == ["2025-01-01T00:00:00Z", None, None]
    # The model's columns are the features only, whatever else a record carries.
    assert len(batch.columns) == len(SPACE.features)
    assert batch.columns[0] == [1.5, 1.5, 1.5]


def test_fields_the_data_never_had_are_still_unknown() -> None:
    error = _error_in({"records": [_record(tx_id="a", colour="red")]}, PASSTHROUGH)
    assert error.status == 422
    assert [(e.code, e.field) for e in error.errors] == [("unknown_feature", "colour")]
    # Without the schema's columns, the id is unknown too.
    assert _error({"records": [_record(tx_id="a")]}).errors[0].field == "tx_id"


@pytest.mark.parametrize(
    ("field", "value"),
    [("tx_id", 1.5), ("tx_id", True), ("tx_id", 2**64), ("ts", 3), ("merchant_name", [1])],
)
def test_passthrough_columns_of_the_wrong_type_are_named(field: str, value: object) -> None:
    error = _error_in({"records": [_record(**{field: value})]}, PASSTHROUGH)
    assert (error.status, error.errors[0].code, error.errors[0].field) == (422, "wrong_type", field)


def test_json_schema_lists_the_passthrough_columns() -> None:
    record = PASSTHROUGH.json_schema(10)["properties"]["records"]["items"]
    assert {"tx_id", "ts", "merchant_name"} <= set(record["properties"])
    assert "tx_id" not in record["required"]
    assert record["additionalProperties"] is False


def _error_in(body: object, space: FeatureSpace) -> RequestError:
    with pytest.raises(RequestError) as caught:
        validate_body(body, space, 10)
    return caught.value


LIMITED = PASSTHROUGH.with_limits(max_id_length=8, max_string_length=5)


@pytest.mark.parametrize(
    ("field", "value"),
    [("tx_id", "x" * 9), ("country", "DEDEDE"), ("ts", "2025-01-01"), ("merchant_name", "Shops")],
)
def test_strings_past_their_limit_are_refused_naming_row_and_field(field: str, value: str) -> None:
    if len(value) <= 5 and field != "tx_id":
        value += "!"
    error = _error_in({"records": [_record(), _record(**{field: value})]}, LIMITED)
    first = error.errors[0]
    assert (error.status, first.code, first.row, first.field) == (422, "too_long", 1, field)
    longest = 8 if field == "tx_id" else 5
    assert first.message == (
        f"{field} is {len(value)} characters long; at most {longest} are accepted"
    )


def test_strings_at_their_limit_are_served() -> None:
    batch = validate_body({"records": [_record(tx_id="x" * 8, country="ABCDE")]}, LIMITED, 10)
    assert batch.ids == ["x" * 8]
    assert batch.columns[2] == ["ABCDE"]


def test_integral_float_ids_are_integers_and_wide_ones_refused() -> None:
    # JSON Schema counts 1329.0 as the integer 1329; so does the service, echoing 1329.
    batch = validate_body({"records": [_record(tx_id=1329.0)]}, PASSTHROUGH, 10)
    assert batch.ids == [1329]
    assert type(batch.records[0]["tx_id"]) is int
    for wide in (2**64, -(2**63) - 1, 1e20):
        error = _error_in({"records": [_record(tx_id=wide)]}, PASSTHROUGH)
        assert (error.errors[0].code, error.errors[0].field) == ("wrong_type", "tx_id")
        assert "64-bit" in error.errors[0].message


def test_wide_integers_in_features_are_scored_and_logged_as_floats() -> None:
    record = _record(amount=2**70, country=2**70)
    batch = validate_body({"records": [record]}, SPACE, 10)
    assert batch.columns[0] == [float(2**70)]
    assert batch.columns[2] == ["1180591620717411303424"]
    # orjson, which writes the log, takes 64-bit integers only.
    assert record["amount"] == record["country"] == float(2**70)


def test_the_json_schema_states_the_limits_and_numbers_as_categories() -> None:
    record = LIMITED.json_schema(10)["properties"]["records"]["items"]["properties"]
    assert record["tx_id"]["maxLength"] == 8
    assert (record["tx_id"]["minimum"], record["tx_id"]["maximum"]) == (-(2**63), 2**64 - 1)
    assert record["country"] == {
        "type": ["string", "number", "boolean"],
        "maxLength": 5,
        "examples": ["DE", "FR"],
    }
    assert record["ts"]["maxLength"] == record["merchant_name"]["maxLength"] == 5
    # A number is accepted for a category, as the schema says.
    assert validate_body({"records": [_record(country=7.5)]}, SPACE, 10).columns[2] == ["7.5"]
