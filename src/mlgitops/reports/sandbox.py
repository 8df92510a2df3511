"""Scoring an untrusted model: the head's pickle never loads in the judge's own process.

Unpickling runs code (any `__reduce__`), so a hostile model file is code execution. `mlgitops
report pr` therefore hands the head's model bytes (already checked against the md5 dvc.lock
pins and the sha256 the release names) and the test rows' feature columns, never their labels,
to a separate interpreter:

- `python -I` (no PYTHONPATH, no user site, no PYTHON* variables) with an environment that
  holds nothing but PATH, HOME (an empty temp dir), LANG and the thread caps: no cloud or
  registry credentials, no GITHUB_TOKEN, no KUBECONFIG;
- its working directory is that empty temp dir; it answers with the scores on stdout.

The judge checks the answer (one finite probability per row) and computes the verdict itself,
so the model can only choose its own scores; it cannot write the verdict, the report or the exit
code. What it can still do (the residual trust, docs/ci/judge.md): read files the CI user can
read, e.g. the test split's labels in the DVC cache, use the network, and run as long as the
timeout. A container or VM without network and with only the two inputs mounted closes that.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.errors import JudgeError

TIMEOUT_SECONDS = 600

# Runs in the sandboxed interpreter: argv[1] is the trusted code's import root (so a pickle that
# names mlgitops classes gets the judge's own, never the head's).
# It leaves by os._exit, after flushing, in both outcomes: an interpreter teardown with Arrow's
# thread pools alive can abort ("terminate called without an active exception", exit -6), which
# would turn a verdict into a judge error at random.
_SCORER = """
import io, os, struct, sys, traceback
try:
    sys.path.insert(0, sys.argv[1])
    import joblib, numpy as np, pandas as pd
    raw = sys.stdin.buffer.read()
    (size,) = struct.unpack(">Q", raw[:8])
    model = joblib.load(io.BytesIO(raw[8 : 8 + size]))
    frame = pd.read_parquet(io.BytesIO(raw[8 + size :]))
    scores = np.asarray(model.predict_proba(frame)[:, 1], dtype="float64")
    out = io.BytesIO()
    np.save(out, scores, allow_pickle=False)
    sys.stdout.buffer.write(out.getvalue())
    sys.stdout.buffer.flush()
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
os._exit(0)
"""


def scrubbed_env(home: str) -> dict[str, str]:
    """The whole environment of a sandboxed process: no variable of the caller's but these."""
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "TMPDIR": home}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class SandboxedModel:
    """A model file, scored by a sandboxed interpreter; `predict_proba` like a pipeline."""

    def __init__(self, data: bytes, who: str = "the head's model") -> None:
        self.data = data
        self.who = who

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        scores = sandboxed_scores(self.data, frame, self.who)
        return np.column_stack([1.0 - scores, scores])


def sandboxed_scores(model: bytes, frame: pd.DataFrame, who: str) -> np.ndarray:
    """The positive-class probability `model` gives each row of `frame`, computed elsewhere."""
    features = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(features, index=False)
    payload = len(model).to_bytes(8, "big") + model + features.getvalue()
    trusted_root = str(Path(__file__).resolve().parents[2])
    with tempfile.TemporaryDirectory(prefix="mlgitops-sandbox-") as home:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _SCORER, trusted_root],
                input=payload,
                capture_output=True,
                cwd=home,
                env=scrubbed_env(home),
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise JudgeError(f"{who}: scoring took over {TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise JudgeError(
            f"{who}: the sandboxed scorer failed (exit {done.returncode}): "
            f"{lines[-1] if lines else 'no message'}"
        )
    try:
        scores = np.load(io.BytesIO(done.stdout), allow_pickle=False)
    except ValueError as error:
        raise JudgeError(f"{who}: the sandboxed scorer answered no score array: {error}") from None
    if scores.dtype.kind not in "fi" or scores.shape != (len(frame),):
        raise JudgeError(
            f"{who}: the sandboxed scorer answered {scores.shape} {scores.dtype} values, not one "
            f"score for each of {len(frame)} rows"
        )
    scores = scores.astype("float64")
    if not np.all(np.isfinite(scores)):
        raise JudgeError(f"{who}: the sandboxed scorer answered scores that are not finite")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise JudgeError(f"{who}: the sandboxed scorer answered scores outside [0, 1]")
    return scores
