"""The head's model is scored by another interpreter that sees no credentials and cannot write
the verdict: it can only choose its own scores, and those are checked."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from mlgitops.errors import JudgeError
from mlgitops.reports.sandbox import SandboxedModel, sandboxed_scores

FRAME = pd.DataFrame({"amount": [1.0, 2.0, 3.0], "country": ["NL", "DE", "NL"]})


class _Hostile:
    """Unpickles to whatever `source` evaluates to, after running it: code execution."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self):
        return (eval, (self.source,))


def _model(body: str) -> bytes:
    # An object with predict_proba built by eval at load time; `body` computes `s` from `X`.
    source = (
        "type('M', (), {'predict_proba': lambda self, X: (lambda np: (lambda s: "
        f"np.column_stack([1 - s, s]))({body}))(__import__('numpy'))}})()"
    )
    out = io.BytesIO()
    pickle.dump(_Hostile(source), out)
    return out.getvalue()


def test_scores_come_back_from_the_sandbox():
    scores = sandboxed_scores(_model("np.asarray(X['amount'], dtype=float) / 10"), FRAME, "head")
    assert scores.tolist() == [0.1, 0.2, 0.3]
    assert SandboxedModel(_model("np.full(len(X), 0.5)")).predict_proba(FRAME).shape == (3, 2)


def test_a_hostile_pickle_sees_no_credentials_and_no_labels(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x")
    monkeypatch.setenv("KUBECONFIG", "/home/ci/.kube/config")
    spy = tmp_path / "seen.json"
    os_ = "__import__('os')"
    seen_now = "{'env': dict(OS.environ), 'cwd': OS.getcwd(), 'columns': list(X.columns)}"
    leak = "(open(SPY, 'w').write(__import__('json').dumps(SEEN)), np.full(len(X), 0.5))[1]"
    leak = leak.replace("SPY", repr(str(spy))).replace("SEEN", seen_now).replace("OS", os_)
    frame = FRAME.assign(is_fraud=[0, 1, 0]).drop(columns="is_fraud")
    sandboxed_scores(_model(leak), frame, "head")
    seen = json.loads(spy.read_text())
    assert not {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "KUBECONFIG"} & set(seen["env"])
    # Only what scrubbed_env passes (and what OpenMP sets for itself at import).
    passed = {"PATH", "HOME", "LANG", "TMPDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
    assert {k for k in seen["env"] if not k.startswith("KMP_")} <= passed | {"MKL_NUM_THREADS"}
    assert seen["cwd"] == seen["env"]["HOME"]
    assert seen["columns"] == ["amount", "country"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("np.full(len(X), 1.5)", "outside \\[0, 1\\]"),
        ("np.full(len(X) - 1, 0.5)", "not one score for each of 3 rows"),
        ("np.full(len(X), np.nan)", "not finite"),
        ("1 / 0", "the sandboxed scorer failed \\(exit 1\\): ZeroDivisionError"),
    ],
)
def test_a_model_cannot_answer_anything_but_one_probability_per_row(body, message):
    with pytest.raises(JudgeError, match=f"^head: .*{message}"):
        sandboxed_scores(_model(body), FRAME, "head")


def test_the_scores_of_a_real_pipeline_are_its_own(tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": np.linspace(-2, 2, 50)})
    model = LogisticRegression().fit(frame, (frame["x"] > 0).astype(int))
    joblib.dump(model, tmp_path / "m.joblib")
    scores = sandboxed_scores((tmp_path / "m.joblib").read_bytes(), frame, "head")
    np.testing.assert_array_equal(scores, model.predict_proba(frame)[:, 1])
