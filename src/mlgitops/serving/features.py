"""The request schema, derived from the reference profile, and the validation of a batch.

Validation walks the JSON records once and produces one column per feature (floats for numeric
features, normalised category strings or None for categorical ones), plus the counts the metrics
need. No pandas per request: the model's encoder turns these columns into its input matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from mlgitops.profile import CategoricalProfile, ReferenceProfile, normalize_category
from mlgitops.schema import FeatureKind

# Errors reported per request; past this many the rest would only repeat the same mistake.
MAX_ERRORS = 20
# Every `error`/`code` an API answer can carry, with its HTTP status: the one list the OpenAPI
# document and the README's Serving section state (a test holds them to it).
ERROR_CODES: dict[str, int] = {
    "invalid_json": 400,
    "invalid_body": 400,
    "body_too_large": 413,
    "batch_too_large": 413,
    "records_not_wrapped": 422,
    "missing_field": 422,
    "unknown_field": 422,
    "empty_batch": 422,
    "invalid_record": 422,
    "missing_feature": 422,
    "unknown_feature": 422,
    "wrong_type": 422,
    "not_finite": 422,
    "null_not_allowed": 422,
    "too_long": 422,
    "invalid_unicode": 422,
    "unauthorized": 401,
    "feedback_not_configured": 403,
    "request_id_unknown": 403,
    "row_out_of_range": 422,
    "id_mismatch": 422,
    "label_conflict": 409,
    # Answered by the HTTP layer (mlgitops.serving.limits), on any path.
    "request_timeout": 408,
    "header_too_large": 431,
    "overloaded": 503,
    "not_ready": 503,
    "feedback_unavailable": 503,
    "feedback_busy": 503,
}
WRAP = '{"records": [...]}'
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
# Integer ids the response and the log can carry (orjson writes 64-bit integers only).
ID_RANGE = {"minimum": _INT64_MIN, "maximum": _UINT64_MAX}
_ABSENT = object()


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind
    allows_missing: bool
    # Categories seen in training (profile keys); anything else is counted as unseen.
    known: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FeatureSpace:
    """The features a request must carry, in model input order."""

    features: tuple[Feature, ...]
    # Columns of the data that are not features (the schema's id, time and dropped columns): a
    # record may carry them; they are checked for type, returned/logged, never scored.
    id_column: str | None = None
    time_column: str | None = None
    passthrough: tuple[str, ...] = ()
    # Longest id and other string accepted, in characters (None: any; ServingConfig's limits).
    max_id_length: int | None = None
    max_string_length: int | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def with_passthrough(
        self, id_column: str | None, time_column: str | None, others: tuple[str, ...] = ()
    ) -> FeatureSpace:
        """This space accepting the schema's non-feature columns (TrainingSchema fields)."""
        named = [c for c in (id_column, time_column) if c]
        passthrough = (*named, *(c for c in others if c not in named))
        return replace(self, id_column=id_column, time_column=time_column, passthrough=passthrough)

    def with_limits(self, max_id_length: int | None, max_string_length: int | None) -> FeatureSpace:
        """This space refusing ids and other strings longer than these (characters)."""
        return replace(self, max_id_length=max_id_length, max_string_length=max_string_length)

    @classmethod
    def from_profile(cls, profile: ReferenceProfile) -> FeatureSpace:
        features = []
        for name, spec in profile.features.items():
            known = (
                frozenset(spec.frequencies) if isinstance(spec, CategoricalProfile) else frozenset()
            )
            features.append(Feature(name, spec.kind, profile.allows_missing(name), known))
        return cls(tuple(features))

    def json_schema(self, max_batch_size: int) -> dict[str, Any]:
        """JSON Schema of the /predict body, for clients and the OpenAPI document."""
        properties: dict[str, Any] = {}
        longest = {"maxLength": self.max_string_length} if self.max_string_length else {}
        for feature in self.features:
            if feature.kind == "numeric":
                spec: dict[str, Any] = {"type": "number"}
            else:
                # A number is a category too: 7 and 7.0 are both the category "7".
                spec = {"type": ["string", "number", "boolean"], **longest}
                if feature.known:
                    spec["examples"] = sorted(feature.known)[:20]
            if feature.allows_missing:
                spec = {"anyOf": [spec, {"type": "null"}]}
            properties[feature.name] = spec
        for name in self.passthrough:
            if name == self.id_column:
                spec = {
                    "type": ["string", "integer", "null"],
                    "description": "entity id, echoed",
                    # minimum/maximum bound integer ids only, maxLength string ones.
                    **ID_RANGE,
                    **({"maxLength": self.max_id_length} if self.max_id_length else {}),
                }
            elif name == self.time_column:
                spec = {
                    "type": ["string", "null"],
                    "description": "event time (ISO 8601), logged",
                    **longest,
                }
            else:
                spec = {
                    "type": ["string", "number", "boolean", "null"],
                    "description": "ignored",
                    **longest,
                }
            properties[name] = spec
        record = {
            "type": "object",
            "properties": properties,
            "required": [f.name for f in self.features if not f.allows_missing],
            "additionalProperties": False,
        }
        return {
            "type": "object",
            "properties": {
                "records": {
                    "type": "array",
                    "items": record,
                    "minItems": 1,
                    "maxItems": max_batch_size,
                }
            },
            "required": ["records"],
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class FieldError:
    code: str
    message: str
    row: int | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "row": self.row, "field": self.field}


class RequestError(Exception):
    """A request the service refuses; always a 4xx with the errors as JSON."""

    def __init__(
        self, status: int, errors: list[FieldError], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(errors[0].message)
        self.status = status
        self.errors = errors
        self.headers = headers

    def body(self) -> dict[str, Any]:
        first = self.errors[0]
        return {
            "error": first.code,
            "message": first.message,
            "detail": [e.as_dict() for e in self.errors],
        }


@dataclass
class Batch:
    """A validated batch: one column per feature, in FeatureSpace order."""

    records: list[dict[str, Any]]
    columns: list[list[Any]]
    missing: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    # Per record: the id column's and the time column's value (None when absent or unnamed).
    ids: list[Any] | None = None
    event_times: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.records)


def _type_name(value: object) -> str:
    return {
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def validate_body(body: object, space: FeatureSpace, max_batch_size: int) -> Batch:
    """Check a decoded /predict body against the schema; raise RequestError naming row and field."""
    if isinstance(body, list) and body and all(type(item) is dict for item in body):
        message = f"the body is an array of records: wrap them in {WRAP}"
        raise RequestError(422, [FieldError("records_not_wrapped", message)])
    if not isinstance(body, dict):
        message = f"body must be a JSON object {WRAP}, got {_type_name(body)}"
        raise RequestError(400, [FieldError("invalid_body", message)])
    extra = [key for key in body if key != "records"]
    if extra and "records" not in body and _is_record(body, space):
        message = f"the body is one record: wrap records in {WRAP}"
        raise RequestError(422, [FieldError("records_not_wrapped", message)])
    if extra:
        message = f"unknown top-level field {extra[0]!r}"
        raise RequestError(422, [FieldError("unknown_field", message, None, extra[0])])
    records = body.get("records", _ABSENT)
    if records is _ABSENT:
        message = "'records' is required"
        raise RequestError(422, [FieldError("missing_field", message, None, "records")])
    if not isinstance(records, list):
        message = f"'records' must be an array, got {_type_name(records)}"
        raise RequestError(422, [FieldError("wrong_type", message, None, "records")])
    if not records:
        raise RequestError(422, [FieldError("empty_batch", "'records' is empty", None, "records")])
    if len(records) > max_batch_size:
        message = f"batch of {len(records)} records is larger than the maximum of {max_batch_size}"
        raise RequestError(413, [FieldError("batch_too_large", message, None, "records")])
    return validate_records(records, space)


def _is_record(body: dict[str, Any], space: FeatureSpace) -> bool:
    """A body naming a feature or a column of the data: a record sent without its wrapper."""
    names = {f.name for f in space.features} | set(space.passthrough)
    return any(key in names for key in body)


def validate_records(records: list[Any], space: FeatureSpace) -> Batch:
    features = space.features
    names = {f.name for f in features}
    passthrough = set(space.passthrough)
    n_features = len(features)
    columns: list[list[Any]] = [[] for _ in features]
    missing = [0] * n_features
    unseen = [0] * n_features
    errors: list[FieldError] = []
    isfinite = math.isfinite
    longest = space.max_string_length

    for row, record in enumerate(records):
        if type(record) is not dict:
            message = f"record must be an object, got {_type_name(record)}"
            errors.append(FieldError("invalid_record", message, row))
            if len(errors) >= MAX_ERRORS:
                break
            continue
        if len(record) > n_features or not names.issuperset(record):
            for key in record:
                if key in names:
                    continue
                if key in passthrough:
                    problem = _passthrough_error(space, row, record, key)
                    if problem is not None:
                        errors.append(problem)
                    continue
                message = f"unknown feature {key!r}"
                errors.append(FieldError("unknown_feature", message, row, key))
        for index, feature in enumerate(features):
            value = record.get(feature.name, _ABSENT)
            kind = type(value)
            if feature.kind == "numeric":
                if kind is float:
                    if not isfinite(value):
                        errors.append(_not_finite(row, feature.name, value))
                        continue
                elif kind is int:
                    try:
                        value = float(value)
                    except OverflowError:
                        errors.append(_not_finite(row, feature.name, value))
                        continue
                    if not _INT64_MIN <= record[feature.name] <= _UINT64_MAX:
                        # Logged as scored: orjson writes no integer beyond 64 bits.
                        record[feature.name] = value
                elif value is None or value is _ABSENT:
                    if not feature.allows_missing:
                        errors.append(_missing(row, feature.name, value is None))
                        continue
                    missing[index] += 1
                    value = math.nan
                else:
                    message = f"expected a number, got {_type_name(value)}"
                    errors.append(FieldError("wrong_type", message, row, feature.name))
                    continue
            else:
                if kind is str:
                    if longest is not None and len(value) > longest:
                        errors.append(_too_long(row, feature.name, value, longest))
                        continue
                elif value is None or value is _ABSENT:
                    if not feature.allows_missing:
                        errors.append(_missing(row, feature.name, value is None))
                        continue
                    missing[index] += 1
                    value = None
                elif kind is int or kind is bool:
                    if kind is int and not _INT64_MIN <= value <= _UINT64_MAX:
                        # A category all the same; logged as a float, as orjson writes no
                        # integer beyond 64 bits.
                        try:
                            record[feature.name] = float(value)  # type: ignore[arg-type]
                        except OverflowError:
                            errors.append(_not_finite(row, feature.name, value))
                            continue
                    value = normalize_category(value)
                elif kind is float:
                    if not isfinite(value):
                        errors.append(_not_finite(row, feature.name, value))
                        continue
                    value = normalize_category(value)
                else:
                    message = f"expected a string, integer or boolean, got {_type_name(value)}"
                    errors.append(FieldError("wrong_type", message, row, feature.name))
                    continue
                if value is not None and value not in feature.known:
                    unseen[index] += 1
            columns[index].append(value)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise RequestError(422, errors[:MAX_ERRORS])
    id_column, time_column = space.id_column, space.time_column
    return Batch(
        records=records,
        columns=columns,
        missing={f.name: n for f, n in zip(features, missing, strict=True) if n},
        unseen={f.name: n for f, n in zip(features, unseen, strict=True) if n},
        ids=[r.get(id_column) for r in records] if id_column else None,
        event_times=[r.get(time_column) for r in records] if time_column else None,
    )


def _passthrough_error(
    space: FeatureSpace, row: int, record: dict[str, Any], key: str
) -> FieldError | None:
    value = record[key]
    kind = type(value)
    if value is None:
        return None
    if key == space.id_column:
        if kind is float and value.is_integer():  # type: ignore[union-attr]
            # 1329.0 is the integer 1329 (JSON Schema's reading too): echoed and logged as one.
            record[key] = value = int(value)  # type: ignore[arg-type]
            kind = int
        if kind is int:
            if _INT64_MIN <= value <= _UINT64_MAX:  # type: ignore[operator]
                return None
            # The response and the log are written by orjson, which refuses wider integers.
            message = f"{key} (the id) is an integer out of the 64-bit range"
        elif kind is str:
            longest = space.max_id_length
            if longest is None or len(value) <= longest:  # type: ignore[arg-type]
                return None
            return _too_long(row, key, value, longest)
        else:
            message = f"{key} (the id) must be a string or an integer, got {_type_name(value)}"
    elif key == space.time_column:
        if kind is str:
            return _string_error(space, row, key, value)
        message = f"{key} (the event time) must be an ISO 8601 string, got {_type_name(value)}"
    else:  # a column the model does not use: checked, never echoed or logged
        if kind is str:
            return _string_error(space, row, key, value)
        if kind in (int, float, bool):
            return None
        message = f"{key} must be a string, number or boolean, got {_type_name(value)}"
    return FieldError("wrong_type", message, row, key)


def _string_error(space: FeatureSpace, row: int, key: str, value: Any) -> FieldError | None:
    longest = space.max_string_length
    if longest is None or len(value) <= longest:
        return None
    return _too_long(row, key, value, longest)


def _too_long(row: int, name: str, value: str, longest: int) -> FieldError:
    message = f"{name} is {len(value)} characters long; at most {longest} are accepted"
    return FieldError("too_long", message, row, name)


def _not_finite(row: int, name: str, value: object) -> FieldError:
    return FieldError("not_finite", f"{name} must be a finite number, got {value!r}", row, name)


def _missing(row: int, name: str, is_null: bool) -> FieldError:
    if is_null:
        return FieldError("null_not_allowed", f"{name} may not be null", row, name)
    return FieldError("missing_feature", f"required feature {name!r} is missing", row, name)


def _shown(text: str) -> str:
    """`text` with anything that is not valid Unicode escaped (a lone surrogate as \\udXXX)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _valid_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def invalid_unicode(document: object) -> FieldError | None:
    """The first string (value or key) of a decoded JSON document that is not valid Unicode (a
    lone UTF-16 surrogate such as "\\ud800", which JSON's escapes can spell), named by its row
    and field: such a string can be neither logged nor answered as UTF-8."""
    # (value, path): iterative, as documents may nest as deep as the parser allows.
    stack: list[tuple[object, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not _valid_unicode(value):
                return _unicode_error(path, _shown(value))
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                if not _valid_unicode(key):
                    return _unicode_error((*path, _shown(key)), _shown(key))
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(value))))
    return None


def _unicode_error(path: tuple[str | int, ...], shown: str) -> FieldError:
    if len(path) >= 2 and path[0] == "records" and isinstance(path[1], int):
        row: int | None = path[1]
        name = str(path[2]) if len(path) >= 3 else ""
    else:
        row = None
        name = str(path[0]) if path else ""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    message = (
        f"{where or 'the body'} is not valid Unicode (a lone UTF-16 surrogate in "
        f'"{shown[:40]}"); send UTF-8 text'
    )
    return FieldError("invalid_unicode", message, row, name or None)
