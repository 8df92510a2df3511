"""Prometheus metrics of the model (BentoML adds its own request metrics beside them).

prometheus_client is imported on first use, not at import time: BentoML workers set
PROMETHEUS_MULTIPROC_DIR after importing the service module, and the client picks its storage
(per-process files that the /metrics endpoint of every worker aggregates) when it is imported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlgitops.experiment.assign import CHALLENGER, CHAMPION, UNASSIGNED
from mlgitops.monitoring import metric_names as names

if TYPE_CHECKING:
    from mlgitops.serving.online import BatchStats, OnlineStats

NAMESPACE = "mlgitops"
# The arms an experiment counts rows of; SHADOW: rows the challenger also scored (shadow mode).
SHADOW = "shadow"
EXPERIMENT_ARMS = (CHAMPION, CHALLENGER, UNASSIGNED, SHADOW)
SCORE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


@dataclass(frozen=True)
class MetricFamilies:
    """The process's prometheus_client metrics; every one is labelled by the release first."""

    predictions: Any
    scores: Any
    missing: Any
    unseen: Any
    rejected: Any
    log_dropped: Any
    feedback: Any
    feedback_joined: Any
    # The monitoring contract (mlgitops.monitoring.metric_names).
    feature_bin: Any
    score_bin: Any
    expected_outcome: Any
    labelled_outcome: Any
    model_info: Any
    # Rows by experiment arm (champion, challenger, unassigned; shadow: rows the challenger
    # also scored). Only touched when an experiment is on.
    experiment_predictions: Any


@dataclass
class ServingMetrics:
    """The metrics of one served release: every series carries its `bento_tag`, so the rules
    judge each release on its own series and every alert names the release (metric_names)."""

    families: MetricFamilies
    bento_tag: str
    # `.labels(...)` costs more than the increment; children are looked up once and kept.
    _children: dict[tuple[str, ...], Any] = field(default_factory=dict)
    # Children of feature_bin by OnlineStats slot, made by `prepare_monitoring`.
    _feature_bins: list[Any] = field(default_factory=list)
    # This worker's rows per arm, for /metadata (the counter above sums over workers).
    _arm_counts: dict[str, int] = field(default_factory=dict)

    def child(self, metric: str, *values: str) -> Any:
        """The series of `metric` with these label values (after the release's)."""
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = getattr(self.families, metric).labels(self.bento_tag, *values)
            self._children[key] = found
        return found

    def observe_batch(
        self,
        labels: Iterable[int],
        scores: Iterable[float],
        missing: dict[str, int],
        unseen: dict[str, int],
    ) -> None:
        positives = total = 0
        observe = self.child("scores").observe
        for label, score in zip(labels, scores, strict=True):
            positives += label
            total += 1
            observe(score)
        if positives:
            self.child("predictions", "1").inc(positives)
        if total - positives:
            self.child("predictions", "0").inc(total - positives)
        for feature, count in missing.items():
            self.child("missing", feature).inc(count)
        for feature, count in unseen.items():
            self.child("unseen", feature).inc(count)

    def prepare_monitoring(self, stats: OnlineStats, info: dict[str, str]) -> None:
        """Create every (feature, bin), score bin and outcome series at 0, and set model_info:
        a bin that stops filling then reads 0 instead of vanishing from the rules' queries."""
        family = self.families.feature_bin
        self._feature_bins[:] = [family.labels(self.bento_tag, f, b) for f, b in stats.series]
        for label in stats.score_labels:
            self.child("score_bin", label)
        for outcome in names.OUTCOMES:
            self.child("expected_outcome", outcome)
            self.child("labelled_outcome", outcome)
        for label in ("0", "1"):
            self.child("predictions", label)
        info = {**info, names.RELEASE_LABEL: self.bento_tag}
        self.families.model_info.labels(*(info.get(k, "") for k in names.MODEL_INFO_LABELS)).set(1)

    def prepare_experiment(self) -> None:
        """Create every arm's series at 0, so a dashboard sees an arm that gets no traffic."""
        for arm in EXPERIMENT_ARMS:
            self.child("experiment_predictions", arm)
            self._arm_counts.setdefault(arm, 0)

    def observe_arms(self, arms: Iterable[str], shadowed: int = 0) -> None:
        counts: dict[str, int] = {}
        for arm in arms:
            counts[arm] = counts.get(arm, 0) + 1
        if shadowed:
            counts[SHADOW] = shadowed
        for arm, count in counts.items():
            self.child("experiment_predictions", arm).inc(count)
            self._arm_counts[arm] = self._arm_counts.get(arm, 0) + count

    def experiment_counts(self) -> dict[str, int]:
        return dict(self._arm_counts)

    def observe_monitoring(self, batch: BatchStats) -> None:
        """One increment per touched series of the batch."""
        children = self._feature_bins
        for slot, count in batch.feature_bins:
            children[slot].inc(count)
        for label, count in batch.score_bins:
            self.child("score_bin", label).inc(count)
        for outcome, amount in batch.expected.items():
            self.child("expected_outcome", outcome).inc(amount)


_lock = threading.Lock()
_families: MetricFamilies | None = None
_metrics: dict[str, ServingMetrics] = {}


def get_metrics(bento_tag: str) -> ServingMetrics:
    """The metrics of release `bento_tag` in this process (one per release; the families
    under them are created once: prometheus refuses a second metric of one name)."""
    with _lock:
        found = _metrics.get(bento_tag)
        if found is None:
            found = _metrics[bento_tag] = ServingMetrics(_get_families(), bento_tag)
        return found


def _get_families() -> MetricFamilies:
    global _families
    if _families is None:
        from prometheus_client import Counter, Gauge, Histogram

        client = names.CLIENT_NAMES
        release = names.RELEASE_LABEL

        def contract(kind: Any, metric: str, documentation: str, **extra: Any) -> Any:
            labels = list(names.LABELS[metric])
            return kind(client[metric], documentation, labels, namespace=NAMESPACE, **extra)

        _families = MetricFamilies(
            predictions=contract(
                Counter, names.PREDICTIONS_TOTAL, "Predictions by label at the operating threshold"
            ),
            scores=Histogram(
                "prediction_score",
                "Predicted fraud scores",
                [release],
                namespace=NAMESPACE,
                buckets=SCORE_BUCKETS,
            ),
            missing=Counter(
                "feature_missing",
                "Missing (null or absent) values accepted, by feature",
                [release, "feature"],
                namespace=NAMESPACE,
            ),
            unseen=Counter(
                "feature_unseen_category",
                "Categories not in the reference profile, by feature",
                [release, "feature"],
                namespace=NAMESPACE,
            ),
            rejected=Counter(
                "requests_rejected",
                "Requests refused (4xx, or 503 overloaded), by error code",
                [release, "code"],
                namespace=NAMESPACE,
            ),
            log_dropped=Counter(
                "prediction_log_dropped",
                "Prediction log lines dropped (queue full or sink down)",
                [release],
                namespace=NAMESPACE,
            ),
            feedback=Counter(
                "feedback", "Feedback labels stored", [release, "label"], namespace=NAMESPACE
            ),
            feedback_joined=Counter(
                "feedback_joined",
                "Feedback labels stored, by whether this worker joined them to its prediction "
                "(joined: counted in labelled_outcome; not_joined: served elsewhere or evicted)",
                [release, "result"],
                namespace=NAMESPACE,
            ),
            feature_bin=contract(
                Counter,
                names.FEATURE_BIN_TOTAL,
                "Scored rows by feature and bin of the reference profile",
            ),
            score_bin=contract(
                Counter, names.SCORE_BIN_TOTAL, "Scored rows by bin of the score reference"
            ),
            expected_outcome=contract(
                Counter,
                names.EXPECTED_OUTCOME_TOTAL,
                "CBPE expected outcomes: sums of calibrated scores at the threshold",
            ),
            labelled_outcome=contract(
                Counter,
                names.LABELLED_OUTCOME_TOTAL,
                "Feedback labels joined to the prediction this worker served",
            ),
            # One series per worker would repeat the same facts; "max" keeps one, equal to 1.
            model_info=contract(
                Gauge,
                names.MODEL_INFO,
                "The served model: bento tag, model and data hash, Git commit",
                multiprocess_mode="max",
            ),
            experiment_predictions=Counter(
                "experiment_predictions",
                "Predictions by experiment arm (shadow: also scored by the challenger)",
                [release, "arm"],
                namespace=NAMESPACE,
            ),
        )
    return _families
