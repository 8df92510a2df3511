"""The retrain loop reads the gate's verdict on the retrained model after `dvc repro`, which
finishes whatever the verdict (tests/test_retrain_loop.py runs the whole loop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitops.errors import GateFailedError, GateInconclusiveError, RetrainError
from mlgitops.records import GateReport
from mlgitops.retrain.loop import passed_verdict

MODEL = "sha256:" + "a" * 64
GATE_FILE = Path("reports/gate.json")


def _report(verdict: str, model: str = MODEL) -> GateReport:
    return GateReport(
        verdict=verdict,
        reason="ROC AUC worse by more than 0.01 (interval [-0.2, -0.1] beyond -0.01)",
        base="HEAD",
        challenger_model_hash=model,
        n_test=100,
        n_positive=5,
        alpha=0.05,
        power=0.8,
        challenger_threshold=0.3,
        currency="EUR",
        bootstrap_reps=10,
        seed=1,
    )


def test_a_pass_on_the_retrained_model_is_returned() -> None:
    report = _report("PASS")
    assert passed_verdict(report, MODEL, GATE_FILE) is report


@pytest.mark.parametrize(
    ("verdict", "error", "code"),
    [("FAIL", GateFailedError, 17), ("INCONCLUSIVE", GateInconclusiveError, 18)],
)
def test_a_refusing_verdict_is_its_gate_error(verdict, error, code) -> None:
    with pytest.raises(error) as raised:
        passed_verdict(_report(verdict), MODEL, GATE_FILE)
    assert str(raised.value) == (
        f"gate {verdict}: ROC AUC worse by more than 0.01 (interval [-0.2, -0.1] beyond -0.01); "
        "nothing committed, no branch made, main and the deployed release untouched"
    )
    assert raised.value.exit_code == code


def test_a_missing_or_stale_record_is_a_retrain_error() -> None:
    with pytest.raises(RetrainError, match="left no readable reports/gate.json"):
        passed_verdict(None, MODEL, GATE_FILE)
    with pytest.raises(RetrainError, match="judged model sha256:bbbbbbbbbbbb, not the retrained"):
        passed_verdict(_report("PASS", "sha256:" + "b" * 64), MODEL, GATE_FILE)
