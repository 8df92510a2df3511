"""The seeded hyperparameter search: its candidates and its CV folds (stage `tune` runs it)."""

from __future__ import annotations

import pandas as pd

from mlgitops.config import TuneConfig
from mlgitops.modeling import search
from mlgitops.schema import TIME_COLUMN
from mlgitops.stages import split, validate


def test_trial_zero_is_params_yaml_and_the_rest_are_seeded(params):
    config = TuneConfig(trials=6, models=("hist_gradient_boosting", "logistic_regression"))
    first = search.candidates(params.train, config)
    assert first[0] == params.train
    assert [c.model for c in first[1:]] == ["hist_gradient_boosting", "logistic_regression"] * 2 + [
        "hist_gradient_boosting"
    ]
    assert search.candidates(params.train, config) == first
    other = search.candidates(params.train, config.model_copy(update={"seed": 1}))
    assert other[1:] != first[1:]


def test_time_ordered_folds_validate_on_later_rows(params):
    validate.run(params)
    split.run(params)
    frame = pd.read_parquet(params.paths.train)
    splits, kind = search.folds(frame, TuneConfig(cv_folds=3))
    assert kind == "time_ordered"
    times = frame[TIME_COLUMN].to_numpy()
    for fit, val in splits:
        assert times[fit].max() <= times[val].min()
    _, kind = search.folds(frame.drop(columns=[TIME_COLUMN]), TuneConfig(cv_folds=3))
    assert kind == "stratified"
