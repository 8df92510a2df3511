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


# --- evidence and progress ----------------------------------------------------------------------

REPRO_OUTPUT = """'data.dvc' didn't change, skipping
Stage 'validate' didn't change, skipping
Running stage 'tune':
> mlgitops stage tune
tune: 3 trials
Updating lock file 'dvc.lock'

Running stage 'gate':
> mlgitops stage gate
gate: FAIL: ROC AUC worse by more than 0.01
"""


def test_each_stage_gets_a_line_when_it_starts_and_ends_with_its_time() -> None:
    from mlgitops.retrain.loop import StageProgress

    ticks = iter([10.0, 72.5, 73.0, 75.25, 80.0, 81.5])
    said: list[str] = []
    stages = StageProgress(said.append, clock=lambda: next(ticks))
    for line in REPRO_OUTPUT.splitlines():
        stages.line(line)
    stages.finish()
    assert said == [
        "stage validate unchanged",
        "stage tune started",
        "stage tune finished in 62.5 s",
        "stage gate started",
        "stage gate finished in 2.2 s",
    ]
    stages.line("Running stage 'package':")
    stages.finish(failed=True)
    assert said[-1] == "stage package failed after 1.5 s"


def test_step_log_writes_a_line_per_step_where_it_cannot_redraw() -> None:
    import io

    from mlgitops.progress import StepLog

    stream = io.StringIO()  # not a terminal, as in CI or `2> log`
    log = StepLog("retrain", stream)
    log("stage tune started")
    log("stage tune finished in 62.5 s")
    log.close()
    assert stream.getvalue() == (
        "retrain: stage tune started\nretrain: stage tune finished in 62.5 s\n"
    )


def test_a_refused_challenger_leaves_its_gate_report_and_metrics(tmp_path: Path) -> None:
    from mlgitops.retrain.loop import keep_evidence
    from tests.support.project import params_in

    worktree = tmp_path / "worktree"
    params = params_in(Path())
    for path in (
        params.paths.gate_report,
        params.paths.gate_metrics,
        params.paths.metrics,
        params.paths.headline_evaluate,
        params.paths.headline_gate,
    ):
        (worktree / path).parent.mkdir(parents=True, exist_ok=True)
        (worktree / path).write_text(f"contents of {path}\n")
    target = tmp_path / "repo" / "reports" / "retrain" / "retrain-abc"
    target.mkdir(parents=True)
    (target / "stale.md").write_text("an earlier run\n")
    assert keep_evidence(worktree, params, target) == target
    kept = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    # No metrics/tune.json in the worktree (tuning off): nothing made up for it.
    assert kept == [
        "evaluate.json", "gate.json", "gate.md", "metrics/evaluate.json", "metrics/gate.json"
    ]  # fmt: skip
    assert (target / "gate.md").read_text() == f"contents of {params.paths.gate_report}\n"
    assert not target.with_name("retrain-abc.partial").exists()
