"""`mlgitops monitor` end to end on generated traffic: each scenario raises its alerts with the
alert exit code, unchanged traffic raises nothing, bad input exits 14 and still leaves reports."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mlgitops.cli.main import main
from mlgitops.errors import MonitoringAlertError, MonitoringInputError

# Scenario -> alerts that must fire (kind, subject) and kinds that must not.
EXPECTED = {
    "none": (set(), None),
    "covariate_shift": ({("feature_drift", "amount")}, {"feature_missing", "labels_late"}),
    "new_category": ({("new_category", "merchant_category")}, {"feature_missing"}),
    "broken_feature": ({("feature_missing", "distance_from_home_km")}, {"new_category"}),
    "concept_drift": ({("fnr_degraded", "fnr")}, {"feature_drift", "feature_missing"}),
    "label_delay": ({("labels_late", "labels")}, {"feature_drift", "fnr_degraded"}),
}


def _monitor(release, log, labels, out: Path, *extra: str) -> tuple[int, dict]:
    argv = ["monitor", str(log), "--params", str(release.params_file)]
    argv += ["--summary", str(out / "summary.json"), "--report", str(out / "report.html")]
    if labels is not None:
        argv += ["--labels", str(labels)]
    code = main([*argv, *extra])
    return code, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_scenario_raises_its_alerts(release, tmp_path: Path, scenario):
    log, labels = release.traffic(tmp_path, scenario=scenario)
    code, summary = _monitor(release, log, labels, tmp_path)
    required, forbidden = EXPECTED[scenario]
    fired = {(a["kind"], a["subject"]) for a in summary["alerts"]}
    if scenario == "none":
        assert code == 0, [a["message"] for a in summary["alerts"]]
        assert summary["status"] == "ok"
    else:
        assert code == MonitoringAlertError.exit_code
        assert required <= fired, sorted(fired)
        assert not ({kind for kind, _ in fired} & forbidden), sorted(fired)
    assert summary["rows"] == 14_000
    assert summary["windows_total"] == 14
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_new_category_is_named_with_counts_and_example_ids(release, tmp_path: Path):
    log, labels = release.traffic(tmp_path, scenario="new_category", rows=3000, days=3)
    _, summary = _monitor(release, log, labels, tmp_path)
    window = summary["windows"]["2025-06-30"]
    new = window["features"]["merchant_category"]["new_categories"]["bnpl"]
    assert new["count"] > 50
    assert all(example.startswith("tx_") for example in new["examples"])
    assert any("'bnpl'" in a["message"] for a in summary["alerts"])


def test_outputs_are_deterministic(release, tmp_path: Path):
    log, labels = release.traffic(tmp_path, scenario="covariate_shift", rows=3000, days=3)
    _monitor(release, log, labels, tmp_path)
    outputs = (tmp_path / "summary.json", tmp_path / "report.html")
    first = [path.read_bytes() for path in outputs]
    _monitor(release, log, labels, tmp_path)
    assert first == [path.read_bytes() for path in outputs]


def test_damaged_logs_are_counted_not_fatal(release, tmp_path: Path):
    log, labels = release.traffic(tmp_path, rows=2000, days=2)
    lines = log.read_bytes().splitlines()
    other = lines[5].replace(b"fraud-detector:test", b"fraud-detector:old")
    damaged = [*lines[:10], b"{not json", b'{"score": 0.5}', other, *lines[10:], lines[11][:40]]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl.gz").write_bytes(gzip.compress(b"\n".join(damaged)))  # no final newline
    code, summary = _monitor(release, logs, labels, tmp_path / "out")
    assert code == 0
    assert summary["input"]["malformed_lines"] == 3
    assert summary["other_model_versions"]["fraud-detector:old"]["rows"] == 1
    assert summary["rows"] == 2000


def test_all_missing_column_and_gaps_do_not_crash(release, tmp_path: Path):
    log, labels = release.traffic(tmp_path, rows=3000, days=3)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    kept = []
    for record in records:
        record["features"]["customer_age"] = None
        if not record["event_time"].startswith("2025-07-01"):  # an empty day in the middle
            kept.append(record)
    log.write_text("".join(json.dumps(r) + "\n" for r in kept))
    code, summary = _monitor(release, log, labels, tmp_path)
    assert code == MonitoringAlertError.exit_code
    kinds = {(a["kind"], a["window"], a["subject"]) for a in summary["alerts"]}
    assert ("no_traffic", "2025-07-01", "traffic") in kinds
    assert ("feature_missing", "2025-06-30", "customer_age") in kinds
    # Windows only where there are predictions; the empty day is one gap.
    assert list(summary["windows"]) == ["2025-06-30", "2025-07-02"]
    assert [(g["first"], g["windows"]) for g in summary["gaps"]] == [("2025-07-01", 1)]


def test_old_log_format_joins_the_feedback_log(release, tmp_path: Path):
    log, labels = release.traffic(tmp_path, rows=2000, days=2)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    truth = {row["id"]: row["label"] for row in _csv(labels)}
    feedback = []
    for record in records:
        transaction = record.pop("id")
        record.pop("event_time")
        feedback.append(
            {"request_id": record["request_id"], "row": record["row"],
             "label": int(truth[transaction]), "time": record["time"], "model_version": "x"}
        )  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    feedback_log = tmp_path / "feedback.jsonl"
    feedback_log.write_text("".join(json.dumps(r) + "\n" for r in feedback))
    _, summary = _monitor(release, log, feedback_log, tmp_path)
    assert summary["labels_matched"] == 2000


def _csv(path: Path) -> list[dict]:
    import csv

    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("content", [None, b"", b"garbage\n{]\n"])
def test_unusable_input_exits_14_and_still_writes_reports(release, tmp_path: Path, content):
    log = tmp_path / "predictions.jsonl"
    if content is not None:
        log.write_bytes(content)
    code, summary = _monitor(release, log, None, tmp_path)
    assert code == MonitoringInputError.exit_code
    assert summary["status"] == "unusable"
    assert str(log) in summary["error"] or "no usable" in summary["error"]
    assert "unusable" in (tmp_path / "report.html").read_text()


def test_labels_without_a_key_column_are_refused(release, tmp_path: Path):
    log, _ = release.traffic(tmp_path, rows=500, days=1)
    bad = tmp_path / "labels.csv"
    bad.write_text("who,label\nx,1\n")
    code, summary = _monitor(release, log, bad, tmp_path)
    assert code == MonitoringInputError.exit_code
    assert "labels.csv: no 'id'" in summary["error"]


def test_logs_and_labels_from_an_fsspec_url(release, tmp_path: Path):
    import fsspec

    log, labels = release.traffic(tmp_path, rows=600, days=1)
    memory = fsspec.filesystem("memory")
    memory.pipe("/bucket/logs/day-1.jsonl.gz", gzip.compress(log.read_bytes()))
    memory.pipe("/bucket/labels/labels.csv", labels.read_bytes())
    logs, label_url = "memory://bucket/logs", "memory://bucket/labels/labels.csv"
    # Labels arrive a day or more later: look from a month on, when all have arrived.
    code, summary = _monitor(release, logs, label_url, tmp_path, "--as-of", "2025-08-01")
    assert code == 0
    assert summary["rows"] == 600
    assert summary["labels_matched"] == 600


def test_table_drift_flags_only_the_shifted_feature(release, tmp_path: Path):
    from mlgitops.monitoring.drift import table_drift
    from mlgitops.monitoring.logs import ReadStats, read_predictions
    from mlgitops.monitoring.reference import load_score_reference
    from mlgitops.profile import load_profile

    profile = load_profile(release.params.paths.profile)
    reference = load_score_reference(release.params.paths.score_reference)
    for scenario, expected in (("none", set()), ("covariate_shift", {"amount"})):
        log, _ = release.traffic(tmp_path / scenario, scenario=scenario, rows=3000, days=3)
        frame = read_predictions([str(log)], profile, ReadStats())
        drift = table_drift(frame, profile, reference, release.params.monitoring)
        drifted = {name for name, figures in drift.items() if figures["drift"]}
        # A covariate shift of amounts moves the scores too.
        assert drifted - {"score"} == expected, drifted
