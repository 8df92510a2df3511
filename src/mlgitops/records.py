"""Typed artifacts of the train and evaluate stages: the model card and the evaluation metrics,
the tuning and gate records, and the headline figures each stage declares as DVC metrics.

Like the schema, the profile and the release record, each is read back through its model, so a
missing or misspelt key is an error naming the file, not a KeyError somewhere downstream.
Neither holds anything from the wall clock or the machine: same data and params, same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from mlgitops.io import atomic_write_text, load_model_json
from mlgitops.model_base import FrozenModel
from mlgitops.schema import FeatureSpec


class ModelCard(FrozenModel):
    model_hash: str
    model_type: str
    n_train_rows: int
    train_label_rate: float
    # The latest event time in the training split (`data.time_column`), ISO 8601 UTC; None when
    # the data has no time column. It says how fresh the model is without a wall-clock time.
    data_until: str | None
    features: tuple[FeatureSpec, ...]
    train_params: dict[str, Any]
    mlgitops_version: str


class ValidationFigures(FrozenModel):
    """The validation split at the chosen threshold: the rows the threshold was fitted on, so
    these figures are optimistic and are never the ones reported or gated on."""

    n_rows: int
    label_rate: float
    roc_auc: float
    pr_auc: float
    precision: float
    recall: float
    alerts_per_1000: float
    expected_cost_per_1000: float


class EvaluationMetrics(FrozenModel):
    """Test-split metrics (every top-level figure is measured on rows nothing was fitted on)."""

    roc_auc: float
    pr_auc: float
    # Exact (never rounded): serving must cut where evaluation did.
    threshold: float
    precision: float
    recall: float
    fpr: float
    fnr: float
    tp: int
    fp: int
    tn: int
    fn: int
    n_test: int
    test_label_rate: float
    # Business terms: per 1,000 transactions, alerts to review, frauds missed, expected cost.
    alerts_per_1000: float
    missed_frauds_per_1000: float
    expected_cost_per_1000: float
    threshold_policy: str
    currency: str
    # Where the threshold was chosen. None in records written before the validation split,
    # when it was chosen on the test split itself (and the test figures were optimistic).
    threshold_chosen_on: Literal["validation"] | None = None
    validation: ValidationFigures | None = None


class TunedParams(FrozenModel):
    """What stage `tune` chose, and the evidence; stage `train` fits `train`."""

    enabled: bool
    # The full train config to fit (params.yaml's `train:` with the chosen family and its
    # hyperparameters); equal to params.yaml's when tuning is off.
    train: dict[str, Any]
    objective: str
    # "higher" for roc_auc, "lower" for log_loss.
    better: Literal["higher", "lower"]
    cv_score: float | None = None
    # The same CV score of params.yaml's own train config (trial 0).
    baseline_cv_score: float | None = None
    best_trial: int | None = None
    n_trials: int = 0
    n_rows_searched: int = 0
    cv_folds: int = 0
    folds: Literal["time_ordered", "stratified"] | None = None
    # True when tune.max_seconds stopped the search before tune.trials (machine-dependent).
    stopped_by_time: bool = False


Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]


class PairedDifference(FrozenModel):
    """challenger minus champion on the same test rows, with its one-sided test."""

    # Which way is better; `margin` is how far the challenger may go the other way.
    better: Literal["higher", "lower"]
    champion: float
    challenger: float
    difference: float
    # Two-sided (1 - alpha) interval of the difference; PASS/FAIL compare it with the margin.
    lower: float
    upper: float
    standard_error: float
    margin: float
    # p-value of H0 "worse by at least the margin"; small means non-inferiority is shown.
    p_non_inferiority: float
    # The smallest true difference this test set detects at the configured power.
    mde: float
    verdict: Verdict


class SegmentGuardrail(FrozenModel):
    """Expected cost per 1,000 of challenger - champion within one segment of the test rows.
    It FAILs only when harm beyond the margin is shown; SKIPPED when the segment is too small."""

    column: str
    value: str
    n_rows: int
    n_positive: int
    difference: float | None = None
    lower: float | None = None
    upper: float | None = None
    verdict: Literal["PASS", "FAIL", "SKIPPED"]


class GateReport(FrozenModel):
    verdict: Verdict
    reason: str
    base: str | None
    champion_bento_tag: str | None = None
    champion_model_hash: str | None = None
    challenger_model_hash: str
    n_test: int
    n_positive: int
    alpha: float
    power: float
    # Challenger minus champion: higher is better for ROC AUC, lower for cost.
    roc_auc: PairedDifference | None = None
    expected_cost_per_1000: PairedDifference | None = None
    champion_threshold: float | None = None
    challenger_threshold: float
    currency: str
    bootstrap_reps: int
    seed: int
    # Guardrails (gate.segments): empty when none are configured or nothing was compared.
    segments: tuple[SegmentGuardrail, ...] = ()


class PrVerdict(FrozenModel):
    """`mlgitops report pr --verdict-json`: a change's verdict, the policy it was judged under
    (always the base's) and whether the change edits that policy (mlgitops.policy)."""

    verdict: Verdict
    # What `mlgitops report pr` exits with (filled in by the CLI, which maps verdicts to codes).
    exit_code: int | None = None
    base: str
    base_commit: str
    head: str
    head_commit: str
    # "running": the code of the `mlgitops` that ran; "base": a worktree of the base revision
    # with its own venv (`--judge-from-base`).
    judged_by: Literal["running", "base"] = "running"
    policy_sha256: str
    policy_changed: bool
    changed_keys: tuple[str, ...] = ()
    # "head": head's test split as committed; "base_split": head's data split again under the
    # base's split policy (the head changed what defines the test rows).
    test_rows: Literal["head", "base_split"] = "head"
    gate: GateReport


# --- headline figures: the DVC metrics ---------------------------------------------------------
# `dvc metrics show` and `dvc exp show` list what people compare across experiments, a few short
# keys per stage that fit a 200-column terminal together; the records above keep the detail and
# are what mlgitops reads. Key names are unique across the files, so DVC shows them unprefixed.


class EvaluationHeadline(FrozenModel):
    """The test split at the operating threshold (paths.headline_evaluate)."""

    roc_auc: float
    pr_auc: float
    recall: float
    fpr: float
    threshold: float
    # Expected cost of errors per 1,000 transactions, in threshold.currency.
    cost_per_1000: float

    @classmethod
    def of(cls, record: EvaluationMetrics) -> EvaluationHeadline:
        return cls(
            roc_auc=record.roc_auc,
            pr_auc=record.pr_auc,
            recall=record.recall,
            fpr=record.fpr,
            threshold=round(record.threshold, 6),
            cost_per_1000=record.expected_cost_per_1000,
        )


class GateHeadline(FrozenModel):
    """The verdict and challenger - champion of its two figures (paths.headline_gate); the
    differences are None when there was no champion to compare with."""

    verdict: Verdict
    roc_auc_diff: float | None
    cost_diff: float | None

    @classmethod
    def of(cls, report: GateReport) -> GateHeadline:
        auc, cost = report.roc_auc, report.expected_cost_per_1000
        return cls(
            verdict=report.verdict,
            roc_auc_diff=None if auc is None else round(auc.difference, 6),
            cost_diff=None if cost is None else round(cost.difference, 1),
        )


def tune_headline(record: TunedParams) -> dict[str, float]:
    """The CV score of the pick under its objective's name (`cv_log_loss`, `cv_roc_auc`), so
    experiments with other objectives get their own column; nothing when tuning was off."""
    if not record.enabled or record.cv_score is None:
        return {}
    return {f"cv_{record.objective}": record.cv_score}


def save_headline(figures: FrozenModel | dict[str, float], path: Path) -> None:
    data = figures if isinstance(figures, dict) else figures.model_dump(mode="json")
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def save_record(record: FrozenModel, path: Path) -> None:
    # json.dumps of the plain dump keeps the files as they were (and as `dvc metrics` reads them).
    atomic_write_text(path, json.dumps(record.model_dump(mode="json"), indent=2) + "\n")


def load_model_card(path: Path) -> ModelCard:
    return load_model_json(ModelCard, path)


def load_metrics(path: Path) -> EvaluationMetrics:
    return load_model_json(EvaluationMetrics, path)


def load_tuned_params(path: Path) -> TunedParams:
    return load_model_json(TunedParams, path)


def load_gate_report(path: Path) -> GateReport:
    return load_model_json(GateReport, path)
