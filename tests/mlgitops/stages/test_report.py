from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlgitops.cli.main import main
from mlgitops.config import Params
from mlgitops.release import write_release
from mlgitops.reports.history import previous_release
from mlgitops.reports.model import load_report
from mlgitops.stages import report
from tests.support.project import raw_params
from tests.support.reports import evaluated, fake_release, reported

__all__ = ["evaluated", "reported"]


def test_a_rerun_writes_the_same_bytes(reported: Params) -> None:
    before = [p.read_bytes() for p in (reported.paths.report_html, reported.paths.report_json)]
    report.run(reported)
    after = [p.read_bytes() for p in (reported.paths.report_html, reported.paths.report_json)]
    assert before == after


def test_outside_git_there_is_no_previous_release(reported: Params) -> None:
    twin = load_report(reported.paths.report_json)
    assert twin.changes.previous_commit is None
    assert "no previous release" in twin.changes.note
    assert all(row.previous is None for row in twin.changes.rows)


def _params_file(params: Params, tmp_path: Path, **report_section: object) -> Path:
    raw = raw_params()
    raw["paths"] = params.paths.model_dump(mode="json")
    raw["data"]["path"] = str(params.data.path)
    raw["paths"]["report_html"] = str(tmp_path / "out" / "r.html")
    raw["paths"]["report_json"] = str(tmp_path / "out" / "r.json")
    raw["report"] = {**raw["report"], **report_section}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"daily_volume": -10}, "report.daily_volume"),
        ({"review_capacity_per_day": 0}, "report.review_capacity_per_day"),
        ({"words": {"positive": 5}}, "report.words.positive"),
        ({"words": ["fraud", "valid"]}, "report.words"),
        ({"words": {"postive": "fraud"}}, "report.words.postive"),
    ],
)
def test_bad_report_params_are_one_line_naming_the_key_and_write_nothing(
    evaluated: Params, tmp_path: Path, capsys, section: dict, key: str
) -> None:
    params_file = _params_file(evaluated, tmp_path, **section)
    assert main(["stage", "report", "--params", str(params_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f": {key}: " in err
    assert not (tmp_path / "out").exists()


def test_the_cli_runs_the_stage_with_other_words(evaluated: Params, tmp_path: Path) -> None:
    words = {"model": "test model", "positive": "bad thing", "negative": "good thing"}
    params_file = _params_file(evaluated, tmp_path, words=words, daily_volume=500)
    assert main(["stage", "report", "--params", str(params_file)]) == 0
    twin = json.loads((tmp_path / "out" / "r.json").read_text())
    assert twin["headline"]["sentence"].startswith("With these settings, the test model would")
    assert " good things would be flagged as fraudulent and sent" in twin["headline"]["sentence"]
    assert twin["headline"]["daily_volume"] == 500


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _repo(tmp_path: Path, evaluated: Params) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "params.yaml").write_text("paths: {}\n")
    (repo / "metrics").mkdir()
    shutil.copy(evaluated.paths.metrics, repo / "metrics" / "evaluate.json")
    return repo


def _commit_release(repo: Path, params: Params, version: str, message: str) -> None:
    record = fake_release(params, version)
    write_release(record, repo / "release.json", repo / "k8s.yaml")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", message)


def test_the_previous_release_is_the_last_other_one(evaluated: Params, tmp_path: Path) -> None:
    repo = _repo(tmp_path, evaluated)
    _commit_release(repo, evaluated, "aaaaaaaaaaaa", "first")
    first = _git(repo, "rev-parse", "HEAD").strip()
    # The first release has none before it.
    assert previous_release(repo, fake_release(evaluated, "aaaaaaaaaaaa")) is None
    (repo / "unrelated.txt").write_text("x")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "unrelated")
    current = fake_release(evaluated, "bbbbbbbbbbbb")
    # Before the new release is committed and after: the same answer.
    found = previous_release(repo, current)
    assert found is not None
    assert (found.commit, found.record.bento_version) == (first, "aaaaaaaaaaaa")
    assert found.metrics is not None
    assert found.metrics["tp"] > 0
    _commit_release(repo, evaluated, "bbbbbbbbbbbb", "second")
    again = previous_release(repo, current)
    assert again is not None
    assert again.commit == first
    # A rollback to the first release, then the second again: each release still compares
    # with what came before it was first released, as its report did then.
    _commit_release(repo, evaluated, "aaaaaaaaaaaa", "rollback to the first")
    assert previous_release(repo, fake_release(evaluated, "aaaaaaaaaaaa")) is None
    _commit_release(repo, evaluated, "bbbbbbbbbbbb", "the second again")
    last = previous_release(repo, current)
    assert last is not None
    assert last.commit == first


def test_report_show_and_rev(reported: Params, tmp_path: Path, capsys, monkeypatch) -> None:
    repo = _repo(tmp_path, reported)
    (repo / "reports").mkdir()
    shutil.copy(reported.paths.report_json, repo / "reports" / "model_report.json")
    shutil.copy(reported.paths.report_html, repo / "reports" / "model_report.html")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "report")
    raw = raw_params()
    raw["paths"] = reported.paths.model_dump(mode="json")
    raw["paths"].update(report_json="reports/model_report.json", report_html="x.html")
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    sentence = load_report(reported.paths.report_json).headline.sentence
    monkeypatch.chdir(repo)
    for argv in (["report"], ["report", "show"], ["report", "--rev", "HEAD"]):
        assert main(argv) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == sentence
        assert "fraud-detector:0123456789ab" in out[1]
    assert main(["report", "show", "--rev", "HEAD"]) == 0
    out = capsys.readouterr().out
    assert "git show " in out
    assert ":reports/model_report.html" in out
    _git(repo, "rm", "-q", "reports/model_report.json")
    _git(repo, "commit", "-qm", "drop")
    assert main(["report", "--rev", "HEAD"]) == 5
    assert "has no report reports/model_report.json" in capsys.readouterr().err


@pytest.mark.parametrize("verdict", ["FAIL", "INCONCLUSIVE"])
def test_a_model_the_gate_did_not_pass_leaves_the_report_of_the_release(
    reported: Params, verdict: str
) -> None:
    """The report describes the release; a challenger that was not released does not replace
    it (its own figures are in reports/evaluate.json, its comparison in reports/gate.md)."""
    from mlgitops.records import GateReport, load_gate_report, save_record
    from mlgitops.release import load_release

    paths = reported.paths
    outputs = (paths.report_html, paths.report_json)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in outputs}
    original = paths.gate_metrics.read_bytes()
    passed = load_gate_report(paths.gate_metrics)
    try:
        save_record(GateReport(**{**passed.model_dump(), "verdict": verdict}), paths.gate_metrics)
        line = report.run(reported)
    finally:
        paths.gate_metrics.write_bytes(original)
    tag = load_release(paths.release).bento_tag
    assert line == (
        f"gate verdict {verdict} (see {paths.gate_report}): release not changed; "
        f"{paths.report_html} still describes {tag}; this model's test figures are in "
        f"{paths.metrics}"
    )
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in outputs} == before


def test_the_same_model_as_the_previous_release_says_so(evaluated: Params) -> None:
    from mlgitops.reports.build import changes_note
    from mlgitops.reports.history import PreviousRelease

    metrics = json.loads(evaluated.paths.metrics.read_text())
    older = fake_release(evaluated, "aaaaaaaaaaaa")
    current = fake_release(evaluated, "bbbbbbbbbbbb")  # the same model hash, another bento
    previous = PreviousRelease(commit="1" * 40, record=older, metrics=metrics)
    assert changes_note(previous, current, metrics, "release.json") == (
        "Same model as the previous release fraud-detector:aaaaaaaaaaaa "
        f"({current.model_hash[:19]}…), at commit 111111111111: figures unchanged."
    )
    other_split = {**metrics, "tp": metrics["tp"] + 1, "fn": metrics["fn"] - 1}
    assert changes_note(previous, current, other_split, "release.json").endswith(
        "the figures differ because the test split did (the data changed)."
    )
    retrained = current.model_copy(update={"model_hash": "sha256:" + "d" * 64})
    assert changes_note(previous, retrained, metrics, "release.json").startswith(
        "Compared with release fraud-detector:aaaaaaaaaaaa at commit 111111111111"
    )
