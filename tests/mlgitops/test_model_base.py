"""The one base of typed records: frozen, unknown keys rejected, `model_` field names allowed."""

from __future__ import annotations

import warnings

import pytest
from pydantic import ConfigDict, ValidationError

from mlgitops.config import Params, PathsConfig
from mlgitops.model_base import FrozenModel
from mlgitops.monitoring.reference import ScoreReference
from mlgitops.profile import ReferenceProfile
from mlgitops.release import ReleaseRecord
from mlgitops.schema import TrainingSchema


class Card(FrozenModel):
    model_hash: str
    rows: int = 0


def test_frozen_and_extra_forbidden() -> None:
    card = Card(model_hash="abc")
    with pytest.raises(ValidationError, match="frozen"):
        card.rows = 3
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Card.model_validate({"model_hash": "abc", "rowz": 3})


def test_model_prefixed_fields_need_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Other(FrozenModel):
            model_type: str

    assert Other(model_type="hgb").model_type == "hgb"


def test_a_subclass_adds_settings_and_keeps_the_base_ones() -> None:
    class Aliased(FrozenModel):
        model_config = ConfigDict(populate_by_name=True)

    assert Aliased.model_config["frozen"] is True
    assert Aliased.model_config["extra"] == "forbid"
    assert Aliased.model_config["populate_by_name"] is True


@pytest.mark.parametrize(
    "model", [Params, PathsConfig, ScoreReference, ReferenceProfile, ReleaseRecord, TrainingSchema]
)
def test_the_typed_files_share_the_base(model: type) -> None:
    assert issubclass(model, FrozenModel)
    assert model.model_config["frozen"] is True
    assert model.model_config["extra"] == "forbid"
