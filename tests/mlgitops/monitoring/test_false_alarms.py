"""False-alarm rate of `mlgitops monitor` by simulation: 200 days of unchanged traffic, one
window a day. Windows with a drift alert must stay within the budget (monitoring.
false_alarm_rate), with binomial slack; the other checks must stay rare too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mlgitops.cli.main import main

DRIFT_KINDS = {
    "feature_drift", "score_drift", "missing_rate", "feature_missing", "feature_constant",
    "new_category", "score_collapse",
}  # fmt: skip
WINDOWS = 200


@pytest.mark.slow
def test_no_drift_windows_stay_within_the_false_alarm_budget(release, tmp_path: Path):
    log, labels = release.traffic(tmp_path, rows=WINDOWS * 400, days=WINDOWS)
    summary_file = tmp_path / "summary.json"
    argv = ["monitor", str(log), "--labels", str(labels), "--params", str(release.params_file)]
    main([*argv, "--summary", str(summary_file), "--report", str(tmp_path / "r.html")])
    summary = json.loads(summary_file.read_text())
    assert summary["windows_total"] == WINDOWS
    drift_windows = {a["window"] for a in summary["alerts"] if a["kind"] in DRIFT_KINDS}
    budget = release.params.monitoring.false_alarm_rate
    slack = 2 * math.sqrt(budget * (1 - budget) / WINDOWS)
    assert len(drift_windows) / WINDOWS <= budget + slack, sorted(drift_windows)
    other_windows = {a["window"] for a in summary["alerts"] if a["kind"] not in DRIFT_KINDS}
    assert len(other_windows) / WINDOWS <= 0.05, [
        a["message"] for a in summary["alerts"] if a["kind"] not in DRIFT_KINDS
    ]
