"""The headline figures (DVC metrics) against the records they summarise."""

from __future__ import annotations

import yaml

from mlgitops.records import (
    EvaluationHeadline,
    GateHeadline,
    GateReport,
    TunedParams,
    tune_headline,
)
from tests.support.project import REPO_ROOT


def _flat(mapping: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        keys |= _flat(value, f"{name}.") if isinstance(value, dict) else {name}
    return keys


def test_headline_names_are_unique_so_dvc_shows_them_unprefixed() -> None:
    """DVC prefixes a column with its file when its name is in two files or is a param's."""
    names = [
        *EvaluationHeadline.model_fields,
        *GateHeadline.model_fields,
        "cv_log_loss",
        "cv_roc_auc",
    ]
    assert len(names) == len(set(names))
    params = _flat(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()))
    assert params & set(names) == set()


def test_the_gate_headline_without_a_champion_has_no_differences() -> None:
    report = GateReport(
        verdict="PASS",
        reason="no champion: HEAD has no release (first release)",
        base="HEAD",
        challenger_model_hash="sha256:" + "a" * 64,
        n_test=100,
        n_positive=5,
        alpha=0.05,
        power=0.8,
        challenger_threshold=0.3,
        currency="EUR",
        bootstrap_reps=10,
        seed=1,
    )
    assert GateHeadline.of(report) == GateHeadline(
        verdict="PASS", roc_auc_diff=None, cost_diff=None
    )


def test_the_cv_score_is_named_by_its_objective_and_absent_when_tuning_is_off() -> None:
    tuned = TunedParams(enabled=True, train={}, objective="roc_auc", better="higher", cv_score=0.91)
    assert tune_headline(tuned) == {"cv_roc_auc": 0.91}
    off = tuned.model_copy(update={"enabled": False, "cv_score": None})
    assert tune_headline(off) == {}
