"""The scikit-learn Pipeline (preprocessing + estimator) a TrainConfig names, and its fit.

Stage `train` fits it; stage `tune` cross-validates candidates of it. Every source of randomness
takes `train.seed`, and the estimators run single-threaded where thread scheduling could change
results, so the same params and data give the same bytes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlgitops.config import TrainConfig
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN, TrainingSchema


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
