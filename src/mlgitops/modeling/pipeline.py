"""Stage `train`: fit the scikit-learn Pipeline (preprocessing + estimator) named in params.

The config is stage `tune`'s choice when `tune.enabled`, else params.yaml's `train:` as written.
Every source of randomness takes `train.seed`, and the estimators run single-threaded where
thread scheduling could change results, so the same params and data give the same bytes.
"""

from __future__ import annotations

import time

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlgitops import __version__
from mlgitops.config import Params, TrainConfig
from mlgitops.errors import ArtifactError
from mlgitops.io import atomic_write, file_sha256
from mlgitops.records import ModelCard, load_tuned_params, save_record
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN, TrainingSchema, load_schema


def _ordinal(config: TrainConfig, unknown: float | int) -> OrdinalEncoder:
    return OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=unknown,
        encoded_missing_value=unknown,
        min_frequency=config.min_category_frequency,
        max_categories=config.max_categories,
        dtype=np.float64,
    )


def build_pipeline(schema: TrainingSchema, config: TrainConfig) -> Pipeline:
    numeric, categorical = schema.numeric_features, schema.categorical_features
    if config.model == "hist_gradient_boosting":
        hp = config.hist_gradient_boosting
        # Unknown and missing categories both become NaN, which the trees route as "missing".
        preprocess = ColumnTransformer(
            [
                ("numeric", "passthrough", numeric),
                ("categorical", _ordinal(config, np.nan), categorical),
            ],
            verbose_feature_names_out=False,
        )
        estimator = HistGradientBoostingClassifier(
            learning_rate=hp.learning_rate,
            max_iter=hp.max_iter,
            max_leaf_nodes=hp.max_leaf_nodes,
            min_samples_leaf=hp.min_samples_leaf,
            l2_regularization=hp.l2_regularization,
            max_bins=hp.max_bins,
            categorical_features=[False] * len(numeric) + [True] * len(categorical),
            class_weight=config.class_weight,
            early_stopping=False,
            random_state=config.seed,
        )
    elif config.model == "random_forest":
        hp = config.random_forest
        preprocess = ColumnTransformer(
            [
                ("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric),
                ("categorical", _ordinal(config, -1), categorical),
            ],
            verbose_feature_names_out=False,
        )
        estimator = RandomForestClassifier(
            n_estimators=hp.n_estimators,
            max_depth=hp.max_depth,
            min_samples_leaf=hp.min_samples_leaf,
            class_weight=config.class_weight,
            random_state=config.seed,
            n_jobs=1,
        )
    else:
        hp = config.logistic_regression
        preprocess = ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(
                        SimpleImputer(
                            strategy="median", add_indicator=True, keep_empty_features=True
                        ),
                        StandardScaler(),
                    ),
                    numeric,
                ),
                (
                    "categorical",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="__missing__"),
                        OneHotEncoder(
                            handle_unknown="infrequent_if_exist",
                            min_frequency=config.min_category_frequency,
                            max_categories=config.max_categories,
                        ),
                    ),
                    categorical,
                ),
            ],
            verbose_feature_names_out=False,
        )
        estimator = LogisticRegression(
            C=hp.C,
            max_iter=hp.max_iter,
            class_weight=config.class_weight,
            random_state=config.seed,
        )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def fit(train: pd.DataFrame, schema: TrainingSchema, config: TrainConfig) -> Pipeline:
    from threadpoolctl import threadpool_limits

    pipeline = build_pipeline(schema, config)
    # HistGradientBoosting sums its histograms over OpenMP threads, and the float sums (so the
    # model's bytes) depend on how many: a fixed count makes them independent of the machine.
    with threadpool_limits(limits=config.n_threads, user_api="openmp"):
        pipeline.fit(train[schema.feature_names], train[TARGET_COLUMN].to_numpy())
    return pipeline


def data_until(train: pd.DataFrame) -> str | None:
    """The latest event time of the training rows, if the split recorded event times."""
    if TIME_COLUMN not in train.columns or train[TIME_COLUMN].isna().all():
        return None
    return pd.Timestamp(train[TIME_COLUMN].max()).isoformat()


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
