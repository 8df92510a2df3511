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
from mlgitops.records import GateReport, PrVerdict


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


def _pr_verdict(verdict: str, changed: tuple[str, ...] = ()) -> PrVerdict:
    return PrVerdict(
        verdict=verdict,
        base="main",
        base_commit="b" * 40,
        head="HEAD",
        head_commit="c" * 40,
        policy_sha256="sha256:" + "d" * 64,
        policy_changed=bool(changed),
        changed_keys=changed,
        gate=_report(verdict),
    )


@pytest.mark.parametrize(
    ("verdict", "changed", "code"),
    [
        ("PASS", (), 0),
        ("FAIL", (), 17),
        ("INCONCLUSIVE", (), 18),
        # A change of the policy: a PASS needs review (33); FAIL and INCONCLUSIVE come first.
        ("PASS", ("gate.auc_margin",), 33),
        ("FAIL", ("gate.auc_margin",), 17),
        ("INCONCLUSIVE", ("split.seed",), 18),
    ],
)
def test_report_pr_prints_the_markdown_and_exits_by_verdict(
    verdict, changed, code, monkeypatch, capsys, tmp_path
):
    monkeypatch.setattr(
        mlgitops.reports.pr,
        "pr_report",
        lambda *a: (f"# {verdict}\n", _pr_verdict(verdict, changed)),
    )
    monkeypatch.setattr("mlgitops.git.repo_root", lambda start=None: tmp_path)
    out, record = tmp_path / "report.md", tmp_path / "verdict.json"
    argv = ["report", "pr", "--base", "main", "--output", str(out), "--verdict-json", str(record)]
    assert main(argv) == code
    assert capsys.readouterr().out == f"# {verdict}\n"
    assert out.read_text() == f"# {verdict}\n"
    written = PrVerdict.model_validate_json(record.read_text())
    assert (written.exit_code, written.policy_changed, written.changed_keys) == (
        code,
        bool(changed),
        changed,
    )


def test_the_gate_exit_codes_are_new_and_distinct():
    codes = [ExportError.exit_code, MonitoringInputError.exit_code, MonitoringAlertError.exit_code]
    codes += [GateError.exit_code, GateFailedError.exit_code, GateInconclusiveError.exit_code]
    assert codes == [13, 14, 15, 16, 17, 18]
