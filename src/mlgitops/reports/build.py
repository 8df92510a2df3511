"""The JSON twin from the loaded inputs: one pure function over scores, frames and records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import ArtifactError
from mlgitops.profile import ReferenceProfile
from mlgitops.records import EvaluationMetrics
from mlgitops.release import ReleaseRecord
from mlgitops.reports import analysis
from mlgitops.reports.history import PreviousRelease
from mlgitops.reports.model import (
    Changes,
    CurvePoint,
    DataSummary,
    FailureModes,
    Headline,
    Lineage,
    ModelReport,
    SplitSummary,
    Tradeoffs,
)
from mlgitops.schema import TARGET_COLUMN, TIME_COLUMN

# The commit is not known while the report is written (it is committed with it); `mlgitops
# report show` prints it. Nothing else would keep the file's bytes independent of Git.
COMMIT_NOTE = "this working tree (mlgitops report show prints the commit)"


@dataclass(frozen=True)
class ReportInputs:
    params: Params
    release: ReleaseRecord
    metrics: EvaluationMetrics
    # evaluate.json as written, for the counts the change table needs.
    raw_metrics: dict[str, Any]
    profile: ReferenceProfile
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    validation_scores: np.ndarray
    test_scores: np.ndarray
    previous: PreviousRelease | None


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def data_summary(inputs: ReportInputs) -> DataSummary:
    parts = {"train": inputs.train, "validation": inputs.validation, "test": inputs.test}
    has_time = all(TIME_COLUMN in frame for frame in parts.values())
    splits = {
        name: SplitSummary(
            rows=len(frame),
            positives=int(frame[TARGET_COLUMN].sum()),
            start=_iso(frame[TIME_COLUMN].min()) if has_time else None,
            end=_iso(frame[TIME_COLUMN].max()) if has_time else None,
        )
        for name, frame in parts.items()
    }
    starts = [s.start for s in splits.values() if s.start]
    ends = [s.end for s in splits.values() if s.end]
    return DataSummary(
        time_column=inputs.params.data.time_column if has_time else None,
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        splits=splits,
    )


def _check_inputs(inputs: ReportInputs, counts: analysis.Counts) -> None:
    p = inputs.params.paths
    if inputs.release.threshold != inputs.metrics.threshold:
        raise ArtifactError(
            f"{p.release}: threshold {inputs.release.threshold} is not the one of {p.metrics} "
            f"({inputs.metrics.threshold}); run `dvc repro`"
        )
    m = inputs.metrics
    if (counts.tp, counts.fp, counts.tn, counts.fn) != (m.tp, m.fp, m.tn, m.fn):
        raise ArtifactError(
            f"{p.metrics}: its counts are not the test split's at its threshold (the model or "
            "the split changed since evaluate ran); run `dvc repro`"
        )


def build_report(inputs: ReportInputs) -> ModelReport:
    params, config = inputs.params, inputs.params.report
    costs, words = params.threshold, config.words
    val_labels = inputs.validation[TARGET_COLUMN].to_numpy().astype(int)
    test_labels = inputs.test[TARGET_COLUMN].to_numpy().astype(int)
    val_scores, test_scores = inputs.validation_scores, inputs.test_scores
    threshold = inputs.metrics.threshold
    counts = analysis.Counts.at(test_labels, test_scores, threshold)
    _check_inputs(inputs, counts)

    source = "params" if config.production_positive_rate is not None else "test split"
    rate = config.production_positive_rate or round(float(test_labels.mean()), 6)
    day = analysis.Day(
        config.daily_volume, rate, costs.false_positive_cost, costs.false_negative_cost
    )
    data = data_summary(inputs)

    per_day = day.figures(counts)
    values = {"fnr": counts.fnr_estimate(), "fpr": counts.fpr_estimate(), **per_day}
    parts = analysis.headline_parts(words.model, values, words)
    headline = Headline(
        sentence=analysis.sentence(parts),
        threshold=threshold,
        **values,
        daily_volume=config.daily_volume,
        positive_rate=rate,
        positive_rate_source=source,
        review_capacity_per_day=config.review_capacity_per_day,
        false_positive_cost=costs.false_positive_cost,
        false_negative_cost=costs.false_negative_cost,
        currency=costs.currency,
        assumptions=analysis.assumptions(
            day,
            source,
            config.review_capacity_per_day,
            {"test_start": data.splits["test"].start, "test_end": data.splits["test"].end},
            words,
        ),
    )

    chosen = analysis.choose_points(val_labels, val_scores, threshold, day, config)
    points = {
        key: analysis.operating_point(
            label,
            t,
            val_labels,
            val_scores,
            test_labels,
            test_scores,
            day,
            config.review_capacity_per_day,
        )
        for key, (label, t) in chosen.items()
    }
    curve = [
        CurvePoint(threshold=t, validation_cost_per_day=v, test_cost_per_day=c)
        for t, v, c in analysis.cost_curve(val_labels, val_scores, test_labels, test_scores, day)
    ]
    tradeoffs = Tradeoffs(
        released="released",
        why=analysis.why_released(inputs.metrics.threshold_policy, costs, words),
        points=points,
        curve=curve,
    )

    fps, fns = analysis.examples(
        inputs.test,
        test_labels,
        test_scores,
        threshold,
        inputs.train,
        inputs.profile,
        config.examples_per_kind,
    )
    top, suppressed, overall = analysis.slices(
        inputs.test,
        test_labels,
        test_scores,
        threshold,
        inputs.profile,
        costs,
        config.min_slice_count,
    )
    failure_modes = FailureModes(
        false_positives=fps,
        false_negatives=fns,
        slices=top,
        slices_suppressed=suppressed,
        min_slice_count=config.min_slice_count,
        overall_cost_per_1000=overall,
        calibration=analysis.calibration(test_labels, test_scores, config.calibration_bins),
    )

    previous = inputs.previous
    note = changes_note(
        previous, inputs.release, inputs.raw_metrics, params.paths.release.as_posix()
    )
    changes = Changes(
        previous_commit=previous.commit if previous else None,
        previous_bento_tag=previous.record.bento_tag if previous else None,
        note=note,
        rows=analysis.compare(inputs.raw_metrics, previous.metrics if previous else None),
    )

    release = inputs.release
    return ModelReport(
        title=f"{release.bento_tag} ({words.model})",
        lineage=Lineage(
            bento_tag=release.bento_tag,
            image=release.image,
            model_hash=release.model_hash,
            data_hash=release.data_hash,
            params_hash=release.params_hash,
            commit=COMMIT_NOTE,
            threshold=threshold,
            threshold_policy=inputs.metrics.threshold_policy,
            threshold_chosen_on=inputs.metrics.threshold_chosen_on or "test",
        ),
        data=data,
        headline=headline,
        tradeoffs=tradeoffs,
        failure_modes=failure_modes,
        changes=changes,
    )


def changes_note(
    previous: PreviousRelease | None,
    release: ReleaseRecord,
    raw_metrics: dict,
    release_file: str,
) -> str:
    """What "What changed since the previous release" says above its table: which release it
    compares with, and that the model did not change when the model hash is the same."""
    if previous is None:
        return f"There is no previous release: no earlier commit records another {release_file}."
    if previous.metrics is not None and previous.record.model_hash == release.model_hash:
        unchanged = analysis.metric_figures(raw_metrics) == analysis.metric_figures(
            previous.metrics
        )
        return (
            f"Same model as the previous release {previous.record.bento_tag} "
            f"({release.model_hash[:19]}…), at commit {previous.commit[:12]}: "
            + (
                "figures unchanged."
                if unchanged
                else "the figures differ because the test split did (the data changed)."
            )
        )
    note = (
        f"Compared with release {previous.record.bento_tag} at commit "
        f"{previous.commit[:12]}, the latest earlier commit that changed {release_file}. "
        "Rates carry Wilson intervals from each release's test counts; the two test splits "
        "differ if the data did."
    )
    if previous.metrics is None:
        note += " That commit has no evaluation metrics file, so only this release is shown."
    return note
