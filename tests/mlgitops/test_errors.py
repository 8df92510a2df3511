"""pydantic's report on bad input, as the one line every reader of a typed file prints."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from mlgitops.errors import error_location, validation_line


class Inner(BaseModel):
    depth: int


class Outer(BaseModel):
    name: str
    inner: Inner
    items: list[Inner] = []

    @model_validator(mode="after")
    def _named(self) -> Outer:
        if self.name == "nobody":
            raise ValueError("a name is required")
        return self


def _error(raw: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(raw)
    return caught.value


def test_the_line_names_the_dotted_key_and_pydantics_message() -> None:
    line = validation_line(_error({"name": "a", "inner": {"depth": "deep"}}))
    assert line == (
        "inner.depth: Input should be a valid integer, unable to parse string as an integer"
    )


def test_list_items_are_located_by_index() -> None:
    line = validation_line(_error({"name": "a", "inner": {"depth": 1}, "items": [{}, {}]}))
    assert line == "items.0.depth: Field required"


def test_a_rule_about_the_whole_object_is_at_the_top_level() -> None:
    line = validation_line(_error({"name": "nobody", "inner": {"depth": 1}}))
    assert line == "(top level): Value error, a name is required"


def test_only_the_first_problem_and_one_line() -> None:
    error = _error({"inner": {"depth": "x"}, "items": "no"})
    assert len(error.errors()) == 3
    line = validation_line(error)
    assert "\n" not in line
    assert line == "name: Field required"


def test_error_location() -> None:
    assert error_location(("train", "params", 0, "max_depth")) == "train.params.0.max_depth"
    assert error_location(()) == "(top level)"
