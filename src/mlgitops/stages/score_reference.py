"""Stage `score_reference`: the released operating point as monitoring sees it.

Scores the held-out test split with the trained model and records the score distribution on
fixed quantile bins, the flag rate, CBPE expected outcomes and cost, and the realized confusion
counts (built by mlgitops.monitoring.operating_point). A separate stage so train and evaluate
stay as they are, and a threshold change re-runs only what depends on it.

CBPE needs calibrated probabilities: an isotonic calibration is fitted on the validation split
(held out from training; the test split only checks it: Brier score and reliability bins before
and after, in paths.calibration_metrics) and recorded in the reference, so the service, the
monitor and the expected figures here all apply the same map.
"""

from __future__ import annotations

import json

import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import ArtifactError, ConfigError
from mlgitops.io import atomic_write_text, load_pipeline, read_json, save_model_json
from mlgitops.monitoring.operating_point import RELEASED_KEYS, build_reference, calibration_check
from mlgitops.monitoring.reference import Costs, fit_calibration
from mlgitops.schema import TARGET_COLUMN, load_schema


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    test = pd.read_parquet(params.paths.test)
    metrics = read_json(params.paths.metrics)
    missing = [key for key in ("threshold", *RELEASED_KEYS) if key not in metrics]
    if missing:
        raise ArtifactError(f"{params.paths.metrics}: missing keys: {', '.join(missing)}")
    model = load_pipeline(params.paths.model)
    scores = model.predict_proba(test[schema.feature_names])[:, 1]
    validation = pd.read_parquet(params.paths.validation)
    calibration = fit_calibration(
        model.predict_proba(validation[schema.feature_names])[:, 1],
        validation[TARGET_COLUMN].to_numpy().astype(int),
    )
    costs = Costs(
        false_positive=params.threshold.false_positive_cost,
        false_negative=params.threshold.false_negative_cost,
        currency=params.threshold.currency,
    )
    labels = test[TARGET_COLUMN].to_numpy().astype(int)
    unknown = [c for c in params.monitoring.segments if c not in schema.feature_names]
    if unknown:
        raise ConfigError(
            f"monitoring.segments: {', '.join(unknown)} is not a feature of the model "
            f"(features: {', '.join(schema.feature_names)})"
        )
    segments = {column: test[column] for column in params.monitoring.segments}
    reference = build_reference(
        labels, scores, metrics, costs, params.monitoring.score_bins, segments, calibration
    )
    check = calibration_check(calibration, scores, labels, params.monitoring.score_bins)
    save_model_json(reference, params.paths.score_reference)
    atomic_write_text(params.paths.calibration_metrics, json.dumps(check, indent=2) + "\n")
    return (
        f"calibration (isotonic on {calibration.n_rows} validation rows): test Brier "
        f"{check['brier_raw']:.5f} -> {check['brier_calibrated']:.5f}, ECE "
        f"{check['ece_raw']:.4f} -> {check['ece_calibrated']:.4f}; "
        f"{reference.n_rows} test rows: flag rate {reference.positive_rate:.2%}, expected cost "
        f"{reference.expected_cost_per_1000:.1f} {costs.currency}/1000 (realized "
        f"{reference.released['expected_cost_per_1000']:.1f}), in {params.paths.score_reference}"
    )
