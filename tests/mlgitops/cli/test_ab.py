"""`mlgitops ab status` from files: report and JSON written for every verdict, exit by verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlgitops.cli.main import main
from mlgitops.experiment.simulate import Arm, Simulation, simulate
from tests.support.project import REPO_ROOT

EXPERIMENT = {"enabled": True, "challenger": "experiment-v2", "share": 0.5}


def _params(tmp_path: Path, experiment: object) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["experiment"] = experiment
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _traffic(tmp_path: Path, sim: Simulation) -> tuple[Path, Path]:
    lines, labels = simulate(sim)
    log = tmp_path / "predictions.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    labels_file = tmp_path / "labels.csv"
    labels.to_csv(labels_file, index=False)
    return log, labels_file


@pytest.mark.parametrize(
    ("challenger", "rows", "verdict", "code"),
    [
        (Arm(recall=0.9, version="b"), 100_000, "CHALLENGER_BETTER", 0),
        (Arm(recall=0.9, version="b"), 600, "INSUFFICIENT_DATA", 42),
    ],
)
def test_status_writes_report_and_json_and_exits_by_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], challenger, rows, verdict, code
) -> None:
    log, labels = _traffic(tmp_path, Simulation(rows=rows, challenger=challenger, seed=1))
    out, result = tmp_path / "reports" / "ab.md", tmp_path / "ab.json"
    argv = ["ab", "status", "--predictions", str(log), "--labels", str(labels)]
    argv += [
        "--out",
        str(out),
        "--json",
        str(result),
        "--params",
        str(_params(tmp_path, EXPERIMENT)),
    ]
    assert main(argv) == code
    captured = capsys.readouterr()
    assert f"ab status: {verdict}" in (captured.out if code == 0 else captured.err)
    assert out.read_text().startswith(f"# Experiment status: **{verdict}**")
    assert json.loads(result.read_text())["verdict"] == verdict


def test_status_as_of_an_earlier_time_sees_less(tmp_path: Path) -> None:
    log, labels = _traffic(tmp_path, Simulation(rows=20_000, seed=2))
    params = _params(tmp_path, EXPERIMENT)
    counts = []
    for as_of in ("2025-07-05T00:00:00Z", "2025-07-12T00:00:00Z"):
        result = tmp_path / f"{as_of[:10]}.json"
        argv = ["ab", "status", "-p", str(log), "-l", str(labels), "--as-of", as_of]
        main([*argv, "--json", str(result), "--params", str(params)])
        counts.append(
            sum(arm["matured_labelled"] for arm in json.loads(result.read_text())["arms"])
        )
    assert 0 < counts[0] < counts[1]


def test_no_experiment_declared_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, labels = _traffic(tmp_path, Simulation(rows=200, seed=3))
    argv = ["ab", "status", "-p", str(log), "-l", str(labels)]
    assert main([*argv, "--params", str(_params(tmp_path, None))]) == 40
    err = capsys.readouterr().err.strip()
    assert err == "error: params.yaml: no `experiment:` declared to report on"


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ({**EXPERIMENT, "share": 1.0}, "experiment.share: Input should be less than 1"),
        ({"enabled": True}, "challenger: a Git revision is required"),
        ({**EXPERIMENT, "mode": "canary"}, "experiment.mode: Input should be 'ab' or 'shadow'"),
    ],
)
def test_bad_experiment_params_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], experiment: dict, message: str
) -> None:
    log, labels = _traffic(tmp_path, Simulation(rows=200, seed=4))
    argv = ["ab", "status", "-p", str(log), "-l", str(labels)]
    assert main([*argv, "--params", str(_params(tmp_path, experiment))]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert "\n" not in err


def test_a_cut_archive_and_a_cut_line_are_read_around_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip
    import zlib

    log, labels = _traffic(tmp_path, Simulation(rows=600, challenger=Arm(version="b"), seed=1))
    whole = gzip.compress(log.read_bytes(), mtime=0)
    cut = tmp_path / "predictions.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    readable = zlib.decompressobj(wbits=31).decompress(whole[: len(whole) // 2])
    assert not readable.endswith(b"\n")  # the cut falls inside a line
    result = tmp_path / "ab.json"
    argv = ["ab", "status", "-p", str(cut), "-l", str(labels), "--json", str(result)]

    code = main([*argv, "--params", str(_params(tmp_path, EXPERIMENT))])

    assert code == 42  # INSUFFICIENT_DATA: what matters is that it did not crash
    err = capsys.readouterr().err.splitlines()
    note = (
        "prediction logs: 1 malformed line skipped (1 cut last line), 1 cut archive (readable "
        f"prefix read: {cut}: ends early after {len(readable)} decompressed bytes)"
    )
    assert err[0] == f"ab status: note: {note}"
    assert err[1].startswith("error: ab status: INSUFFICIENT_DATA: ")
    status = json.loads(result.read_text())
    assert status["input_notes"] == [note]
    assert status["rows"] == readable.count(b"\n")
