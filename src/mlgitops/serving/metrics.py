"""Prometheus metrics of the model (BentoML adds its own request metrics beside them).

prometheus_client is imported on first use, not at import time: BentoML workers set
PROMETHEUS_MULTIPROC_DIR after importing the service module, and the client picks its storage
(per-process files that the /metrics endpoint of every worker aggregates) when it is imported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "mlgitops"
SCORE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


@dataclass(frozen=True)
class ServingMetrics:
    predictions: Any
    scores: Any
    missing: Any
    unseen: Any
    rejected: Any
    log_dropped: Any
    feedback: Any
    # `.labels(...)` costs more than the increment; children are looked up once and kept.
    _children: dict[tuple[str, str], Any] = field(default_factory=dict)

    def child(self, metric: str, value: str) -> Any:
        key = (metric, value)
        found = self._children.get(key)
        if found is None:
            counter = getattr(self, metric)
            found = counter.labels(value)
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
        observe = self.scores.observe
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


_lock = threading.Lock()
_metrics: ServingMetrics | None = None


def get_metrics() -> ServingMetrics:
    """The process's metrics, created once (prometheus refuses a second metric of one name)."""
    global _metrics
    with _lock:
        if _metrics is None:
            from prometheus_client import Counter, Histogram

            _metrics = ServingMetrics(
                predictions=Counter(
                    "predictions",
                    "Predictions by label at the operating threshold",
                    ["label"],
                    namespace=NAMESPACE,
                ),
                scores=Histogram(
                    "prediction_score",
                    "Predicted fraud scores",
                    namespace=NAMESPACE,
                    buckets=SCORE_BUCKETS,
                ),
                missing=Counter(
                    "feature_missing",
                    "Missing (null or absent) values accepted, by feature",
                    ["feature"],
                    namespace=NAMESPACE,
                ),
                unseen=Counter(
                    "feature_unseen_category",
                    "Categories not in the reference profile, by feature",
                    ["feature"],
                    namespace=NAMESPACE,
                ),
                rejected=Counter(
                    "requests_rejected",
                    "Requests refused with a 4xx, by error code",
                    ["code"],
                    namespace=NAMESPACE,
                ),
                log_dropped=Counter(
                    "prediction_log_dropped",
                    "Prediction log lines dropped (queue full or sink down)",
                    namespace=NAMESPACE,
                ),
                feedback=Counter(
                    "feedback",
                    "Feedback labels received",
                    ["label"],
                    namespace=NAMESPACE,
                ),
            )
        return _metrics
