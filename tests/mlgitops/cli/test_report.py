from __future__ import annotations

import pytest

import mlgitops.reports.pr
from mlgitops.cli.main import main
from mlgitops.errors import (
    ExportError,
    GateError,
    GateFailedError,
    GateInconclusiveError,
    MonitoringAlertError,
    MonitoringInputError,
)
from mlgitops.records import GateReport


def _report(verdict: str) -> GateReport:
    return GateReport(
        verdict=verdict,
        reason="r",
        base="main",
        challenger_model_hash="sha256:" + "a" * 64,
        n_test=10,
        n_positive=2,
        alpha=0.05,
        power=0.8,
        challenger_threshold=0.5,
        currency="EUR",
        bootstrap_reps=100,
        seed=1,
    )


@pytest.mark.parametrize(("verdict", "code"), [("PASS", 0), ("FAIL", 17), ("INCONCLUSIVE", 18)])
def test_report_pr_prints_the_markdown_and_exits_by_verdict(
    verdict, code, monkeypatch, capsys, tmp_path
):
    monkeypatch.setattr(
        mlgitops.reports.pr, "pr_report", lambda *a: (f"# {verdict}\n", _report(verdict))
    )
    monkeypatch.setattr("mlgitops.git.repo_root", lambda start=None: tmp_path)
    out = tmp_path / "report.md"
    assert main(["report", "pr", "--base", "main", "--output", str(out)]) == code
    assert capsys.readouterr().out == f"# {verdict}\n"
    assert out.read_text() == f"# {verdict}\n"


def test_the_gate_exit_codes_are_new_and_distinct():
    codes = [ExportError.exit_code, MonitoringInputError.exit_code, MonitoringAlertError.exit_code]
    codes += [GateError.exit_code, GateFailedError.exit_code, GateInconclusiveError.exit_code]
    assert codes == [13, 14, 15, 16, 17, 18]
