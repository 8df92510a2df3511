"""serving/onnx.py on its own: a valid ONNX model, the same probabilities, None for other models."""

from __future__ import annotations

import numpy as np
import onnx
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from mlgitops.serving.onnx import INPUT, compile_model, inference_session


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 2] = rng.integers(0, 5, size=400)
    y = (np.nan_to_num(x[:, 0]) + (x[:, 2] == 3) > 0.5).astype(int)
    return x, y


def test_compiled_model_is_valid_onnx_and_reproduces_predict_proba() -> None:
    x, y = _data()
    estimator = HistGradientBoostingClassifier(
        max_iter=30, categorical_features=[False, False, True], random_state=0
    ).fit(x, y)
    model = compile_model(estimator)
    assert model is not None
    onnx.checker.check_model(model, full_check=True)
    # The input is the matrix after the estimator's own categorical preprocessing.
    matrix = estimator._preprocessor.transform(x)
    scores = inference_session(model).run(None, {INPUT: matrix})[0][:, 0]
    assert np.max(np.abs(scores - estimator.predict_proba(x)[:, 1])) <= 1e-12


def test_other_models_are_not_compiled() -> None:
    x, y = _data()
    assert compile_model(RandomForestClassifier(n_estimators=3).fit(np.nan_to_num(x), y)) is None
    multi = HistGradientBoostingClassifier(max_iter=3).fit(x, np.arange(400) % 3)
    assert compile_model(multi) is None
