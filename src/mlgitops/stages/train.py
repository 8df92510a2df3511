"""Stage `train`: fit the scikit-learn Pipeline (preprocessing + estimator) named in params.

The config is stage `tune`'s choice when `tune.enabled`, else params.yaml's `train:` as written;
the pipeline and its deterministic fit are mlgitops.modeling.pipeline's.
"""

from __future__ import annotations

import time

import joblib
import pandas as pd

from mlgitops import __version__
from mlgitops.config import Params, TrainConfig
from mlgitops.errors import ArtifactError
from mlgitops.io import atomic_write, file_sha256
from mlgitops.modeling.pipeline import data_until, fit
from mlgitops.records import ModelCard, load_tuned_params, save_record
from mlgitops.schema import TARGET_COLUMN, load_schema


def effective_config(params: Params) -> TrainConfig:
    """What this stage fits: stage `tune`'s choice when tuning is on, params.yaml's otherwise."""
    if not params.tune.enabled:
        return params.train
    tuned = load_tuned_params(params.paths.tuned_params)
    if not tuned.enabled:
        raise ArtifactError(
            f"{params.paths.tuned_params}: tune.enabled is true but the file holds no tuning "
            "result (run `dvc repro`)"
        )
    return TrainConfig.model_validate(tuned.train)


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    train = pd.read_parquet(params.paths.train)
    config = effective_config(params)
    started = time.perf_counter()
    pipeline = fit(train, schema, config)
    seconds = time.perf_counter() - started
    atomic_write(params.paths.model, lambda tmp: joblib.dump(pipeline, tmp, compress=3))
    # The card is a separate file so the model's bytes, and hence its hash, stay timeless. The
    # training time differs between machines, so it is printed, never written.
    card = ModelCard(
        model_hash="sha256:" + file_sha256(params.paths.model),
        model_type=config.model,
        n_train_rows=len(train),
        train_label_rate=float(train[TARGET_COLUMN].mean()),
        data_until=data_until(train),
        features=schema.features,
        train_params=config.model_dump(mode="json"),
        mlgitops_version=__version__,
    )
    save_record(card, params.paths.model_card)
    source = "tuned" if params.tune.enabled else "params.yaml"
    return (
        f"{config.model} ({source}) on {len(train)} rows in {seconds:.1f}s, {card.model_hash[:19]}"
    )
