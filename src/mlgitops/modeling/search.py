"""A seeded random search over the model's hyperparameters (and optionally its family), scored
by cross-validation on the training split only (stage `tune` runs it).

The validation split picks the threshold and the test split measures; neither is seen here, so
the tuning cannot leak into the reported figures. Folds are time-ordered (each fold validates on
the period after the rows it fits) when the split recorded event times, stratified otherwise.

Deterministic for `tune.seed`: the candidates come from scikit-learn's `ParameterSampler` with
that seed, trials run one at a time, every estimator takes `train.seed` and runs on one thread
(also the fast choice on a small shared machine). Trial 0 is params.yaml's own train config, so
the choice is never worse in CV than it; ties go to the earlier trial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import loguniform, randint
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import ParameterSampler, StratifiedKFold, TimeSeriesSplit

from mlgitops.config import ModelFamily, TrainConfig, TuneConfig
from mlgitops.errors import DataQualityError
from mlgitops.modeling.pipeline import build_pipeline
from mlgitops.progress import Progress
from mlgitops.records import TunedParams
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN, TrainingSchema

# Search spaces: log scales for rates and penalties, integer ranges around sklearn's defaults.
SPACES: dict[str, dict[str, Any]] = {
    "hist_gradient_boosting": {
        "learning_rate": loguniform(0.02, 0.3),
        "max_iter": randint(100, 501),
        "max_leaf_nodes": randint(8, 64),
        "min_samples_leaf": randint(10, 201),
        "l2_regularization": loguniform(1e-3, 10.0),
    },
    "logistic_regression": {"C": loguniform(1e-3, 1e2)},
    "random_forest": {
        "n_estimators": randint(100, 301),
        "max_depth": randint(4, 21),
        "min_samples_leaf": randint(1, 51),
    },
}


@dataclass(frozen=True)
class Trial:
    number: int
    config: TrainConfig
    score: float


def _plain(value: Any) -> Any:
    # numpy scalars -> Python; floats to 6 significant digits so the params file reads cleanly.
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(f"{float(value):.6g}")
    return value


def candidates(base: TrainConfig, config: TuneConfig) -> list[TrainConfig]:
    """Trial 0 = `base`; then `config.trials - 1` seeded samples, families in turn."""
    families: tuple[ModelFamily, ...] = config.models
    per_family = {
        f: sum(1 for i in range(1, config.trials) if families[(i - 1) % len(families)] == f)
        for f in families
    }
    samples = {
        family: iter(
            ParameterSampler(SPACES[family], n_iter=count, random_state=config.seed + k)
            if count
            else []
        )
        for k, (family, count) in enumerate(per_family.items())
    }
    out = [base]
    for i in range(1, config.trials):
        family = families[(i - 1) % len(families)]
        drawn = {key: _plain(value) for key, value in next(samples[family]).items()}
        current = getattr(base, family).model_copy(update=drawn)
        out.append(base.model_copy(update={"model": family, family: current}))
    return out


def folds(
    frame: pd.DataFrame, config: TuneConfig
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """CV folds over `frame`'s row positions: time-ordered when it has event times."""
    labels = frame[TARGET_COLUMN].to_numpy()
    if TIME_COLUMN in frame.columns and frame[TIME_COLUMN].notna().all():
        order = np.argsort(frame[TIME_COLUMN].to_numpy(), kind="stable")
        splits = [
            (order[fit], order[val])
            for fit, val in TimeSeriesSplit(n_splits=config.cv_folds).split(order)
        ]
        kind = "time_ordered"
    else:
        splitter = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)
        splits = list(splitter.split(np.zeros(len(labels)), labels))
        kind = "stratified"
    for number, (fit, val) in enumerate(splits):
        for name, part in (("fits on", fit), ("validates on", val)):
            if len(np.unique(labels[part])) < 2:
                raise DataQualityError(
                    f"tune: CV fold {number} {name} a single class; use fewer tune.cv_folds "
                    "or a larger tune.max_rows"
                )
    return splits, kind


def search_rows(frame: pd.DataFrame, config: TuneConfig) -> pd.DataFrame:
    if len(frame) <= config.max_rows:
        return frame
    rng = np.random.default_rng(config.seed)
    keep = np.sort(rng.choice(len(frame), size=config.max_rows, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def cv_score(
    frame: pd.DataFrame,
    schema: TrainingSchema,
    config: TrainConfig,
    splits: list[tuple[np.ndarray, np.ndarray]],
    objective: str,
) -> float:
    features, labels = frame[schema.feature_names], frame[TARGET_COLUMN].to_numpy()
    scores = []
    for fit, val in splits:
        pipeline = build_pipeline(schema, config)
        pipeline.fit(features.iloc[fit], labels[fit])
        proba = pipeline.predict_proba(features.iloc[val])[:, 1]
        if objective == "roc_auc":
            scores.append(roc_auc_score(labels[val], proba))
        else:
            scores.append(log_loss(labels[val], proba, labels=[0, 1]))
    return float(np.mean(scores))


def tune(
    train: pd.DataFrame, schema: TrainingSchema, base: TrainConfig, config: TuneConfig
) -> tuple[TunedParams, list[Trial]]:
    from threadpoolctl import threadpool_limits

    better = "higher" if config.objective == "roc_auc" else "lower"
    if not config.enabled:
        off = TunedParams(
            enabled=False,
            train=base.model_dump(mode="json"),
            objective=config.objective,
            better=better,
        )
        return off, []
    rows = search_rows(train, config)
    splits, kind = folds(rows, config)
    sign = 1.0 if better == "higher" else -1.0
    trials: list[Trial] = []
    progress = Progress("tune", config.trials)
    started = time.monotonic()
    stopped_by_time = False
    with threadpool_limits(limits=1):
        for number, candidate in enumerate(candidates(base, config)):
            if config.max_seconds is not None and time.monotonic() - started > config.max_seconds:
                stopped_by_time = True
                break
            trials.append(
                Trial(
                    number, candidate, cv_score(rows, schema, candidate, splits, config.objective)
                )
            )
            best = max(trials, key=lambda t: (sign * t.score, -t.number))
            progress.update(
                number + 1, f"best {config.objective} {best.score:.5f} (trial {best.number})"
            )
    progress.close()
    best = max(trials, key=lambda t: (sign * t.score, -t.number))
    record = TunedParams(
        enabled=True,
        train=best.config.model_dump(mode="json"),
        objective=config.objective,
        better=better,
        cv_score=round(best.score, 6),
        baseline_cv_score=round(trials[0].score, 6),
        best_trial=best.number,
        n_trials=len(trials),
        n_rows_searched=len(rows),
        cv_folds=config.cv_folds,
        folds=kind,
        stopped_by_time=stopped_by_time,
    )
    return record, trials


def history(trials: list[Trial], better: str) -> list[dict[str, Any]]:
    """One row per trial for `dvc plots`: its CV score and the best so far."""
    rows, best = [], None
    for trial in trials:
        if best is None or (trial.score > best if better == "higher" else trial.score < best):
            best = trial.score
        rows.append(
            {
                "trial": trial.number,
                "model": trial.config.model,
                "score": round(trial.score, 6),
                "best": round(best, 6),
            }
        )
    return rows
