"""The confusion counts at the operating threshold, by the serving rule: flagged iff
score >= threshold. One definition for evaluation, the report and the monitoring reference."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
