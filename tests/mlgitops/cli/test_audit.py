"""`mlgitops audit sample | import | report` end to end, through the Typer app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mlgitops.audit.models import AuditReport
from mlgitops.cli.main import app, main
from mlgitops.errors import AuditInputError
from tests.mlgitops.audit.conftest import make_project
from tests.support import audit

runner = CliRunner()


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path, rows=4000, sample_size=200)


def _sample(project, *extra: str):
    out = project.root / "audit"
    result = runner.invoke(
        app,
        [
            "audit",
            "sample",
            "--predictions",
            str(project.log),
            "--out",
            str(out),
            "--params",
            str(project.params_file),
            *extra,
        ],
    )
    return result, out


def test_sample_import_report(project):
    result, out = _sample(project)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("audit ")
    assert "sampled 200 of 4000 predictions" in result.output
    for name in ("sample.csv", "design.json", "tasks.csv", "tasks.label_studio.json"):
        assert (out / name).exists()
    assert "<Choices" in (out / "label_config.xml").read_text()
    tasks = json.loads((out / "tasks.label_studio.json").read_text())
    assert "predictions" not in tasks[0]
    files = audit.write_exports(audit.annotate(tasks, project.truth), project.root / "exports")
    labels = project.root / "labels" / "audit.csv"
    result = runner.invoke(
        app, ["audit", "import", str(files["JSON_MIN"]), "--sample", str(out), "--out", str(labels)]
    )
    assert result.exit_code == 0, result.output
    adjudicated = project.root / "labels" / "audit.adjudicated.csv"
    assert f"adjudicated into {adjudicated}" in result.output
    assert adjudicated.read_text().startswith("id,label,")
    report = project.root / "report" / "audit.md"
    report_json = project.root / "report" / "audit.json"
    args = ["audit", "report", "--sample", str(out), "--labels", str(labels)]
    result = runner.invoke(app, [*args, "--out", str(report), "--json", str(report_json)])
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert "## Estimates for all logged traffic (95% intervals)" in text
    assert (project.root / "report" / "audit.svg").read_text().startswith("<svg")
    parsed = AuditReport.model_validate_json(report_json.read_text())
    assert {e.metric for e in parsed.estimates} == {"precision", "fpr", "fnr", "fraud_rate"}
    printed = runner.invoke(app, args)
    assert printed.exit_code == 0
    assert printed.output == text.replace(
        "\n![Audited fraud rate per score stratum](audit.svg)\n", ""
    )


def test_show_prediction_puts_the_model_label_in_the_tasks(project):
    result, out = _sample(project, "--show-prediction", "--size", "50")
    assert result.exit_code == 0, result.output
    tasks = json.loads((out / "tasks.label_studio.json").read_text())
    assert len(tasks) == 50
    assert tasks[0]["predictions"][0]["model_version"] == "fraud-detector:audit-test"


def _error(result) -> str:
    assert isinstance(result.exception, AuditInputError), result.output
    assert result.exception.exit_code == 27
    message = str(result.exception)
    assert "\n" not in message
    return message


def test_bad_input_is_refused_and_nothing_is_written(project):
    result, out = _sample(project)
    assert result.exit_code == 0
    labels = project.root / "labels.csv"
    labels.write_text("kept\n")
    first_id = (out / "sample.csv").read_text().splitlines()[1].split(",")[0]
    bad = project.root / "bad.csv"
    cases = {
        f"id,label,annotator\n{first_id},yes,ann\n": "label 'yes' is not fraud, legit, 0 or 1",
        "id,label,annotator\nnot-sampled,1,ann\n": "id 'not-sampled' is not in the sample",
        f"id,label,annotator\n{first_id},1,ann\n{first_id},0,ann\n": "who labelled it 1",
    }
    for text, expected in cases.items():
        bad.write_text(text)
        args = ["audit", "import", str(bad), "--sample", str(out), "--out", str(labels)]
        result = runner.invoke(app, args)
        assert expected in _error(result)
        assert labels.read_text() == "kept\n"
        assert not (project.root / "labels.adjudicated.csv").exists()
    result = runner.invoke(app, ["audit", "import", str(bad), "--sample", str(project.root)])
    assert result.exit_code == 2  # usage: --out is required


def test_errors_are_one_line_with_exit_code_27(project, capsys):
    _, out = _sample(project)
    bad = project.root / "other.json"
    bad.write_text(json.dumps([{"id": 1, "data": {"text": "x"}, "annotations": []}]))
    code = main(["audit", "import", str(bad), "--sample", str(out), "--out", "x.csv"])
    err = capsys.readouterr().err
    assert code == 27
    assert err.count("\n") == 1
    assert err.startswith(f"error: {bad}: task 1: no 'record_id' in its data")
    code = main(["audit", "report", "--sample", str(project.root), "--labels", "x.csv"])
    assert code == 27
    assert "not a sample directory" in capsys.readouterr().err


def test_a_second_sample_into_the_same_directory_is_refused(project):
    _, out = _sample(project)
    before = (out / "sample.csv").read_bytes()
    again, _ = _sample(project)
    assert again.exit_code == 0
    smaller, _ = _sample(project, "--size", "100")
    assert "holds another sample" in _error(smaller)
    assert (out / "sample.csv").read_bytes() == before


def _sample_error(project, log, capsys) -> tuple[int, str]:
    out = project.root / "audit"
    code = main(
        ["audit", "sample", "--predictions", str(log), "--out", str(out), "--params",
         str(project.params_file)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert not out.exists()  # nothing written
    return code, err


def test_a_log_without_one_valid_line_is_named_with_the_lines_read(project, capsys):
    garbage = project.root / "garbage.jsonl"
    # Text, JSON that is no prediction, a prediction cut mid-line: nothing to sample.
    garbage.write_text('hello\n{"amount": 12.5}\n{"score": 0.1, "features": {"amo\n')
    code, err = _sample_error(project, garbage, capsys)
    assert code == 27
    assert err == (
        f"error: {garbage}: 3 lines read in 1 file, none a valid prediction (3 malformed; "
        f"first: {garbage}:1: not valid JSON (truncated?))\n"
    )
    assert "model version" not in err


def test_a_missing_log_or_an_empty_directory_exits_27(project, capsys):
    missing = project.root / "absent.jsonl"
    code, err = _sample_error(project, missing, capsys)
    assert (code, err) == (27, f"error: {missing}: not found\n")
    empty = project.root / "no-logs-here"
    empty.mkdir()
    code, err = _sample_error(project, empty, capsys)
    assert code == 27
    assert err.startswith(f"error: {empty}: no prediction log in it (files ending .jsonl, ")


def test_a_log_of_another_model_still_says_which_versions_it_holds(project, capsys):
    other = project.root / "other.jsonl"
    lines = project.log.read_text().splitlines()[:50]
    other.write_text("\n".join(line.replace("audit-test", "older") for line in lines) + "\n")
    code, err = _sample_error(project, other, capsys)
    assert code == 27
    assert "no prediction of model version 'fraud-detector:audit-test'" in err
    assert "(found: fraud-detector:older); pass --model-version" in err


def test_a_cut_archive_and_a_cut_line_are_sampled_around_and_reported(project):
    import gzip
    import zlib

    whole = gzip.compress(project.log.read_bytes(), mtime=0)
    cut = project.root / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 3 // 4])
    readable = zlib.decompressobj(wbits=31).decompress(whole[: len(whole) * 3 // 4])
    assert not readable.endswith(b"\n")  # the cut falls inside a line
    out = project.root / "audit"
    argv = ["audit", "sample", "--predictions", str(cut), "--out", str(out)]

    result = runner.invoke(app, [*argv, "--params", str(project.params_file)])

    assert result.exit_code == 0, result.output
    rows = readable.count(b"\n")
    assert f"sampled 200 of {rows} predictions" in result.output
    assert result.output.endswith(
        f"into {out}; 1 malformed line skipped (1 cut last line), 1 cut archive (readable "
        f"prefix read: {cut}: ends early after {len(readable)} decompressed bytes)\n"
    )
