"""Stage `score_reference`: the released operating point as monitoring sees it.

Scores the held-out test split with the trained model and records the score distribution on
fixed quantile bins, the flag rate, CBPE expected outcomes and cost, and the realized confusion
counts (see mlgitops.monitoring.reference). A separate stage so train and evaluate stay as they
are, and a threshold change re-runs only what depends on it.

CBPE needs calibrated probabilities: an isotonic calibration is fitted on the validation split
(held out from training; the test split only checks it: Brier score and reliability bins before
and after, in paths.calibration_metrics) and recorded in the reference, so the service, the
monitor and the expected figures here all apply the same map.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import ArtifactError, ConfigError
from mlgitops.io import atomic_write_text, load_pipeline, read_json, save_model_json
from mlgitops.monitoring.reference import (
    OUTCOMES,
    Calibration,
    Costs,
    ScoreReference,
    brier,
    confusion_counts,
    expected_outcomes,
    fit_calibration,
    rate,
    reliability_bins,
    row_costs,
    segment_values,
)
from mlgitops.schema import load_schema
from mlgitops.stages.split import TARGET_COLUMN, numeric_profile

RELEASED_KEYS = ("precision", "recall", "fpr", "fnr", "expected_cost_per_1000", "alerts_per_1000")


def build_reference(
    labels: np.ndarray,
    scores: np.ndarray,
    metrics: dict,
    costs: Costs,
    bins: int,
    segments: dict[str, pd.Series] | None = None,
    calibration: Calibration | None = None,
) -> ScoreReference:
    threshold = float(metrics["threshold"])
    outcomes = expected_outcomes(scores, threshold, calibration)
    per_row = row_costs(outcomes, costs)
    expected = {name: float(outcomes[name].mean()) for name in OUTCOMES}
    flagged = scores >= threshold
    positive = labels == 1
    realized = confusion_counts(flagged, labels)
    by_segment = {}
    for column, raw in sorted((segments or {}).items()):
        values = segment_values(raw)
        by_segment[column] = {
            value: confusion_counts(flagged[values == value], labels[values == value])
            for value in sorted(set(values.tolist()))
        }
    return ScoreReference(
        n_rows=len(scores),
        n_positive=int(positive.sum()),
        threshold=threshold,
        score=numeric_profile(pd.Series(scores), bins),
        positive_rate=float(flagged.mean()),
        expected=expected,
        expected_cost_per_1000=float(per_row.mean() * 1000.0),
        expected_cost_std=float(per_row.std()),
        estimated_fpr=rate(expected["fp"], expected["fp"] + expected["tn"]),
        estimated_fnr=rate(expected["fn"], expected["fn"] + expected["tp"]),
        realized=realized,
        released={key: float(metrics[key]) for key in RELEASED_KEYS},
        costs=costs,
        segments=by_segment,
        calibration=calibration,
    )


def calibration_check(
    calibration: Calibration, scores: np.ndarray, labels: np.ndarray, bins: int
) -> dict:
    """The calibration on the test split (rows it was not fitted on): Brier score, mean
    predicted against actual positives, and reliability bins, raw and calibrated."""
    calibrated = calibration.apply(scores)
    reliability = reliability_bins(scores, calibrated, labels, bins)

    def ece(key: str) -> float:
        # Expected calibration error: the row-weighted gap between score and label rate per bin.
        gaps = [b["rows"] * abs(b[key] - b["label_rate"]) for b in reliability]
        return float(sum(gaps) / len(scores))

    return {
        "fitted_on": calibration.fitted_on,
        "fitted_rows": calibration.n_rows,
        "breakpoints": len(calibration.x),
        "test_rows": len(scores),
        "brier_raw": brier(scores, labels),
        "brier_calibrated": brier(calibrated, labels),
        "mean_raw": float(np.mean(scores)),
        "mean_calibrated": float(np.mean(calibrated)),
        "label_rate": float(np.mean(labels)),
        "ece_raw": ece("mean_score"),
        "ece_calibrated": ece("mean_calibrated"),
        "reliability": reliability,
    }


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
