from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlgitops.errors import ArtifactError
from mlgitops.io import file_sha256, load_pipeline
from mlgitops.schema import load_schema
from mlgitops.stages import split, train, validate
from tests.support.project import params_in, write_small_dataset


@pytest.mark.parametrize(
    "model", ["hist_gradient_boosting", "logistic_regression", "random_forest"]
)
def test_same_params_and_data_give_same_model_bytes(tmp_path, model):
    config = params_in(tmp_path, train={"model": model})
    write_small_dataset(config.data.path)
    validate.run(config)
    split.run(config)
    train.run(config)
    first = file_sha256(config.paths.model)
    train.run(config)
    assert file_sha256(config.paths.model) == first


def test_model_handles_unseen_categories_and_missing_values(params):
    validate.run(params)
    split.run(params)
    train.run(params)
    model = load_pipeline(params.paths.model)
    schema = load_schema(params.paths.schema_file)
    row = pd.read_parquet(params.paths.test)[schema.feature_names].head(2).copy()
    row.loc[row.index[0], "merchant_category"] = "never-seen"
    row.loc[row.index[1], "amount"] = np.nan
    scores = model.predict_proba(row)[:, 1]
    assert np.all((scores >= 0) & (scores <= 1))


def test_changing_a_hyperparameter_changes_the_model(tmp_path):
    hashes = []
    for rate in (0.05, 0.2):
        config = params_in(
            tmp_path / str(rate),
            train={"hist_gradient_boosting": {"learning_rate": rate, "max_iter": 30}},
        )
        write_small_dataset(config.data.path)
        validate.run(config)
        split.run(config)
        train.run(config)
        hashes.append(file_sha256(config.paths.model))
    assert hashes[0] != hashes[1]


def test_corrupt_model_file_is_an_artifact_error(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ArtifactError, match="cannot load the model"):
        load_pipeline(path)


def test_the_model_does_not_depend_on_the_machines_cores(tmp_path):
    """A one-core machine (OpenMP limited to one thread) trains the same bytes as this one."""
    from threadpoolctl import threadpool_limits

    config = params_in(tmp_path, train={"model": "hist_gradient_boosting"})
    write_small_dataset(config.data.path)
    validate.run(config)
    split.run(config)
    train.run(config)
    here = file_sha256(config.paths.model)
    with threadpool_limits(limits=1, user_api="openmp"):
        train.run(config)
    assert file_sha256(config.paths.model) == here
