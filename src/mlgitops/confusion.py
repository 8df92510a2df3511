"""The confusion counts at the operating threshold, by the serving rule: flagged iff
score >= threshold, with their rates and their cost. One definition for evaluation, the gate, the
report, the export ledger, experiments and the monitoring reference."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

Count = TypeVar("Count", float, np.ndarray)


def error_cost(fp: Count, fn: Count, fp_cost: float, fn_cost: float) -> Count:
    """The business cost of the errors, fp_cost·FP + fn_cost·FN: of counts, of expected counts
    (CBPE's sums of probabilities) or elementwise of arrays (per row, per threshold, per window;
    boolean per-row indicators give each row's cost)."""
    return fp_cost * fp + fn_cost * fn


def _share(part: float, whole: float) -> float:
    # An empty base (no alerts, no positives...) reads as 0, as in the metrics files.
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def of(cls, flagged: np.ndarray, labels: np.ndarray):  # -> the calling class
        positive = labels == 1
        return cls(
            tp=int(np.sum(flagged & positive)),
            fp=int(np.sum(flagged & ~positive)),
            tn=int(np.sum(~flagged & ~positive)),
            fn=int(np.sum(~flagged & positive)),
        )

    @classmethod
    def at(cls, labels: np.ndarray, scores: np.ndarray, threshold: float):
        return cls.of(scores >= threshold, labels)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def flagged(self) -> int:
        return self.tp + self.fp

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.fp + self.tn

    def rate_counts(self) -> dict[str, tuple[int, int]]:
        """Each rate as (count, base): precision, recall, false positive and false negative
        rate. Callers that put an interval on a rate (Wilson) need the two counts."""
        return {
            "precision": (self.tp, self.tp + self.fp),
            "recall": (self.tp, self.tp + self.fn),
            "fpr": (self.fp, self.fp + self.tn),
            "fnr": (self.fn, self.fn + self.tp),
        }

    def rates(self) -> dict[str, float]:
        """The rates of `rate_counts`, 0 on an empty base (no alerts, no positives...)."""
        return {name: _share(k, n) for name, (k, n) in self.rate_counts().items()}

    @property
    def precision(self) -> float:
        return _share(*self.rate_counts()["precision"])

    @property
    def recall(self) -> float:
        return _share(*self.rate_counts()["recall"])

    @property
    def fpr(self) -> float:
        return _share(*self.rate_counts()["fpr"])

    @property
    def fnr(self) -> float:
        return _share(*self.rate_counts()["fnr"])

    def cost(self, fp_cost: float, fn_cost: float) -> float:
        return error_cost(self.fp, self.fn, fp_cost, fn_cost)
