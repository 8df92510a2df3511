"""The package stage with an experiment on: the release records it, the bento version covers it,
and bad declarations stop the stage before anything is written."""

from __future__ import annotations

import pytest

from mlgitops.config import ExperimentConfig
from mlgitops.errors import ConfigError, PackagingError
from mlgitops.packaging import release as packaging
from mlgitops.packaging.bento import pinned_requirements
from mlgitops.packaging.challenger import Challenger
from tests.mlgitops.deploy.helpers import release_for
from tests.mlgitops.stages.test_package import _through_gate

CHALLENGER = Challenger("challenger-v2", "a" * 40, release_for("challenger"), files={})


def _with(params, **experiment):
    config = ExperimentConfig(enabled=True, challenger="challenger-v2", **experiment)
    return params.model_copy(update={"experiment": config})


def test_the_release_records_the_experiment_and_its_bento_version_covers_it(params) -> None:
    _through_gate(params)
    pins = pinned_requirements(params.paths.requirements_lock)
    plain = packaging.make_release(params, pins)
    assert plain.experiment is None
    on = packaging.make_release(_with(params, share=0.2), pins, CHALLENGER)
    assert on.experiment is not None
    assert on.experiment.challenger_model_tag == CHALLENGER.release.model_tag
    assert on.experiment.challenger_commit == CHALLENGER.commit
    assert on.experiment.assignment_key == params.id_column
    assert on.bento_version != plain.bento_version
    other_share = packaging.make_release(_with(params, share=0.3), pins, CHALLENGER)
    assert other_share.bento_version not in (on.bento_version, plain.bento_version)
    # The same model and no experiment: the version of before (no churn from this feature).
    assert packaging.make_release(params, pins).bento_version == plain.bento_version


def test_a_key_that_is_not_a_column_of_the_data_is_a_one_line_config_error(params) -> None:
    _through_gate(params)
    pins = pinned_requirements(params.paths.requirements_lock)
    with pytest.raises(ConfigError, match="experiment.assignment_key: 'card_id' is not a column"):
        packaging.make_release(_with(params, assignment_key="card_id"), pins, CHALLENGER)


def test_a_challenger_that_is_the_champion_is_refused(params) -> None:
    _through_gate(params)
    pins = pinned_requirements(params.paths.requirements_lock)
    champion = packaging.make_release(params, pins)
    same = Challenger(
        "challenger-v2",
        "b" * 40,
        CHALLENGER.release.model_copy(update={"model_hash": champion.model_hash}),
        files={},
    )
    with pytest.raises(PackagingError, match="releases the champion's own model"):
        packaging.make_release(_with(params), pins, same)
