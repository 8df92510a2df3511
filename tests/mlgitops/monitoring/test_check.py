"""`run_monitor` returns the typed summary it wrote, whatever the verdict, and the file reads
back as the same summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlgitops.errors import MonitoringAlertError, MonitoringInputError
from mlgitops.monitoring.batch import MonitorRequest, output_paths, run_monitor
from mlgitops.monitoring.summary import MonitorSummary
from tests.mlgitops.monitoring.conftest import MODEL_VERSION


def _run(
    release, tmp_path: Path, logs: list[str], labels: list[str], as_of: str | None = None
) -> MonitorSummary:
    when = pd.Timestamp(as_of, tz="UTC") if as_of else None
    request = MonitorRequest(logs, labels, None, when, tmp_path / "s.json", tmp_path / "r.html")
    notes: list[str] = []
    summary = run_monitor(release.params, request, note=notes.append)
    assert notes == summary.notes
    return summary


def test_an_alert_is_the_summary_status_not_an_exception(release, tmp_path: Path) -> None:
    log, labels = release.traffic(tmp_path, scenario="broken_feature", rows=2_000, days=2)
    summary = _run(release, tmp_path, [str(log)], [str(labels)])
    assert summary.status == "alert"
    assert summary.exit_code == MonitoringAlertError.exit_code
    assert summary.model_version == MODEL_VERSION
    assert summary.rows == 2_000
    assert summary.windows is not None
    assert list(summary.windows) == ["2025-06-30", "2025-07-01"]
    window = summary.windows["2025-06-30"]
    assert window.features["distance_from_home_km"].missing_rate == 1
    assert window.realized.labelled <= window.rows
    assert {(a.kind, a.subject) for a in summary.alerts} == {
        ("feature_missing", "distance_from_home_km")
    }
    assert summary.alerts_by_kind == {"feature_missing": 2}
    written = (tmp_path / "s.json").read_text()
    assert written == summary.to_json()
    assert MonitorSummary.model_validate_json(written) == summary


def test_unchanged_traffic_is_ok(release, tmp_path: Path) -> None:
    log, labels = release.traffic(tmp_path, rows=1_000, days=1)
    # Labels arrive a day or more later: look from a month on, when all have arrived.
    summary = _run(release, tmp_path, [str(log)], [str(labels)], as_of="2025-08-01")
    assert (summary.status, summary.exit_code, summary.alerts) == ("ok", 0, [])
    assert summary.labels_given is True
    assert summary.labels_matched == 1_000


@pytest.mark.parametrize("version", ["fraud-detector:other", None])
def test_unusable_input_is_a_status_with_its_error(release, tmp_path: Path, version) -> None:
    log, _ = release.traffic(tmp_path, rows=300, days=1)
    logs = [str(log)] if version else [str(tmp_path / "absent.jsonl")]
    request = MonitorRequest(logs, (), version, None, tmp_path / "s.json", tmp_path / "r.html")
    summary = run_monitor(release.params, request)
    assert summary.status == "unusable"
    assert summary.exit_code == MonitoringInputError.exit_code
    assert summary.error is not None
    assert ("no predictions of model version" in summary.error) == (version is not None)
    assert (tmp_path / "s.json").read_text() == summary.to_json()
    assert "unusable" in (tmp_path / "r.html").read_text()


def test_output_paths_default_to_params(release) -> None:
    paths = output_paths(release.params, MonitorRequest(["x"]))
    assert paths.summary == release.params.paths.monitor_summary
    assert paths.report == release.params.paths.monitor_report
