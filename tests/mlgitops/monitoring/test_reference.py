"""The calibration CBPE uses: fitted on held-out rows, checked on the test split."""

from __future__ import annotations

import json

import numpy as np
from sklearn.isotonic import IsotonicRegression

from mlgitops.monitoring.reference import (
    brier,
    expected_outcomes,
    fit_calibration,
    load_score_reference,
)


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose true probability is their square: a model that overstates fraud."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n)
    return scores, (rng.uniform(0, 1, n) < scores**2).astype(int)


def test_breakpoints_reproduce_sklearn_isotonic_with_clipping() -> None:
    scores, labels = _overconfident(2000, 0)
    calibration = fit_calibration(scores, labels)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(scores, labels)
    probe = np.concatenate([np.linspace(-0.5, 1.5, 501), scores[:100]])
    assert np.allclose(calibration.apply(probe), iso.predict(probe), atol=1e-12)
    assert np.all(np.diff(calibration.y) >= 0)
    assert np.all(np.diff(calibration.x) > 0)


def test_calibration_lowers_the_brier_score_on_new_rows() -> None:
    fit_scores, fit_labels = _overconfident(5000, 1)
    scores, labels = _overconfident(5000, 2)
    calibration = fit_calibration(fit_scores, fit_labels)
    assert brier(calibration.apply(scores), labels) < brier(scores, labels) - 0.01
    # And it recovers the true probability (score squared) closely.
    assert np.mean(np.abs(calibration.apply(scores) - scores**2)) < 0.05


def test_expected_outcomes_flag_on_the_raw_score_and_weigh_by_the_calibrated_one() -> None:
    scores, labels = _overconfident(1000, 3)
    calibration = fit_calibration(scores, labels)
    out = expected_outcomes(np.array([0.2, 0.8]), 0.5, calibration)
    p = calibration.apply(np.array([0.2, 0.8]))
    assert [out[k][0] for k in ("tp", "fp", "tn", "fn")] == [0, 0, 1 - p[0], p[0]]
    assert [out[k][1] for k in ("tp", "fp", "tn", "fn")] == [p[1], 1 - p[1], 0, 0]


def test_the_stage_fits_on_validation_and_reports_the_test_check(release) -> None:
    reference = load_score_reference(release.params.paths.score_reference)
    assert reference.calibration is not None
    assert reference.calibration.fitted_on == "validation"
    check = json.loads(release.params.paths.calibration_metrics.read_text())
    assert check["fitted_rows"] == reference.calibration.n_rows
    assert check["test_rows"] == reference.n_rows
    # Held-out Brier after calibration is no worse than a little above the raw one.
    assert check["brier_calibrated"] <= check["brier_raw"] * 1.05
    assert sum(b["rows"] for b in check["reliability"]) == reference.n_rows
    assert abs(check["mean_calibrated"] - check["label_rate"]) < 0.01
