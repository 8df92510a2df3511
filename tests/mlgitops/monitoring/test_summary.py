"""The typed monitor summary is its file: figures as written, absent keys absent, read back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from mlgitops.monitoring.summary import MonitorSummary, clean

INPUT = {
    "log_files": 1, "log_lines": 3, "malformed_lines": 1, "malformed_examples": ["a.jsonl:2: x"],
    "cut_lines": 0, "long_lines": 0, "cut_archives": [], "label_files": 0, "label_rows": 0,
    "malformed_labels": 0, "malformed_label_examples": [], "cut_label_archives": [],
}  # fmt: skip


def _unusable(**extra) -> dict:
    return {
        "status": "unusable", "exit_code": 14, "model_version": None, "error": "no usable line",
        "notes": [], "alerts": [], "alerts_total": 0, "alerts_by_kind": {}, "cusum_h": 5.0,
        "input": INPUT, **extra,
    }  # fmt: skip


def test_clean_rounds_nulls_and_writes_whole_numbers_as_integers() -> None:
    raw = {
        "nan": math.nan, "inf": -math.inf, "third": 1 / 3, "whole": 400.0, "np": np.float64(2.5),
        "count": np.int64(7), "flag": True, "nested": [np.float64(1e-9), (0.1234567,)],
    }  # fmt: skip
    assert clean(raw) == {
        "nan": None, "inf": None, "third": 0.333333, "whole": 400, "np": 2.5, "count": 7,
        "flag": 1, "nested": [0, [0.123457]],
    }  # fmt: skip
    assert type(clean(400.0)) is int
    assert type(clean(np.int64(3))) is int


def test_an_unusable_summary_leaves_the_figures_out_of_the_file() -> None:
    summary = MonitorSummary.of(_unusable())
    document = json.loads(summary.to_json())
    assert "windows" not in document
    assert "rows" not in document
    assert document["error"] == "no usable line"
    assert summary.rows is None
    assert summary.windows is None
    assert summary.input.malformed_lines == 1


def test_null_figures_stay_null_and_whole_numbers_stay_integers() -> None:
    summary = MonitorSummary.of(
        _unusable(as_of=None, rows=0, label_coverage=None, labels_given=False, cusum_h=5.0)
    )
    text = summary.to_json()
    document = json.loads(text)
    assert document["as_of"] is None  # present, null: not the same as absent
    assert document["labels_given"] == 0
    assert summary.labels_given is False
    assert '"cusum_h": 5,\n' in text  # as clean() wrote it before the model
    assert MonitorSummary.model_validate_json(text) == summary
    assert MonitorSummary.model_validate_json(text).to_json() == text


def test_the_summary_is_frozen_and_refuses_unknown_keys_and_statuses() -> None:
    summary = MonitorSummary.of(_unusable())
    with pytest.raises(ValidationError):
        summary.status = "ok"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="surprise"):
        MonitorSummary.of(_unusable(surprise=1))
    with pytest.raises(ValidationError, match="status"):
        MonitorSummary.of({**_unusable(), "status": "fine"})


def test_the_exit_code_follows_the_status() -> None:
    figures = {key: value for key, value in _unusable().items() if key != "exit_code"}
    assert MonitorSummary.of(figures).exit_code == 14
    assert MonitorSummary.of({**figures, "status": "ok", "error": None}).exit_code == 0
    with pytest.raises(ValidationError, match="exit_code 0 is not the exit code of status"):
        MonitorSummary.of({**figures, "exit_code": 0})
