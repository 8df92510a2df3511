"""The offline HTML report: read from the typed summary, hostile text escaped, no script."""

from __future__ import annotations

from mlgitops.monitoring.html import chart, render
from mlgitops.monitoring.summary import MonitorSummary

INPUT = {
    "log_files": 1, "log_lines": 0, "malformed_lines": 0, "malformed_examples": [],
    "cut_lines": 0, "long_lines": 0, "cut_archives": [], "label_files": 0, "label_rows": 0,
    "malformed_labels": 0, "malformed_label_examples": [], "cut_label_archives": [],
}  # fmt: skip
HOSTILE = '<script>alert("x")</script>'


def _summary(**extra) -> MonitorSummary:
    return MonitorSummary.of(
        {
            "status": "unusable",
            "exit_code": 14,
            "model_version": HOSTILE,
            "error": f"{HOSTILE}: not found",
            "notes": [HOSTILE],
            "alerts": [],
            "alerts_total": 0,
            "alerts_by_kind": {},
            "cusum_h": 5.0,
            "input": INPUT,
            **extra,
        }
    )


def test_an_unusable_summary_renders_its_error_escaped_and_no_charts() -> None:
    page = render(_summary())
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;: not found" in page
    assert "<svg" not in page
    assert "<h2>Alerts (0)</h2>" in page
    assert "mlgitops monitor: unusable" in page


def test_alerts_are_listed_escaped() -> None:
    alert = {"kind": "new_category", "window": "2025-01-01", "subject": "merchant",
             "message": f"merchant has 12 rows in unseen categories: {HOSTILE!r}",
             "value": 0.2, "threshold": 0.01}  # fmt: skip
    page = render(_summary(status="alert", exit_code=15, alerts=[alert], alerts_total=1))
    assert "<script" not in page
    assert "<td>new_category</td>" in page
    assert "mlgitops monitor: alert" in page


def test_a_chart_leaves_gaps_where_a_window_has_no_value() -> None:
    svg = chart("t", ["a", "b", "c", "d"], [("s", [0.1, None, 0.3, 0.4])])
    assert svg.count("<circle") == 1  # "a" alone
    assert svg.count("<polyline") == 1  # "c" to "d"
