"""What an exported artifact costs in accuracy and bytes, against the pipeline on the test split."""

from __future__ import annotations

import gzip

import numpy as np
from sklearn.metrics import roc_auc_score

from mlgitops.config import ThresholdConfig
from mlgitops.confusion import error_cost
from mlgitops.export.ir import decision_threshold
from mlgitops.model_base import FrozenModel


class Parity(FrozenModel):
    max_abs_delta_score: float
    decisions_flipped: int


class Size(FrozenModel):
    raw_bytes: int
    gzip_bytes: int


class ErrorLedger(FrozenModel):
    bits: int
    max_abs_delta_p: float
    decisions_flipped: int
    flipped_fraction: float
    delta_roc_auc: float
    delta_expected_cost_per_1000: float
    size: Size
    float_size: Size
    gzip_ratio_vs_float: float


class Pruning(FrozenModel):
    trees_total: int
    trees_kept: int
    nodes_kept: int
    epsilon_cost_per_1000: float
    expected_cost_per_1000_full: float
    expected_cost_per_1000_kept: float
    roc_auc_full: float
    roc_auc_kept: float
    size: Size


def size_of(blob: bytes) -> Size:
    # mtime=0: the gzip header carries no clock, so the figure is a property of the bytes only.
    return Size(raw_bytes=len(blob), gzip_bytes=len(gzip.compress(blob, 9, mtime=0)))


def decisions(scores: np.ndarray, threshold: float) -> np.ndarray:
    return scores >= decision_threshold(threshold)


def parity(reference: np.ndarray, scores: np.ndarray, threshold: float) -> Parity:
    flipped = int(np.sum(decisions(scores, threshold) != (reference >= threshold)))
    return Parity(
        max_abs_delta_score=float(np.max(np.abs(scores - reference))), decisions_flipped=flipped
    )


def expected_cost_per_1000(
    labels: np.ndarray, scores: np.ndarray, threshold: float, costs: ThresholdConfig
) -> float:
    flagged = decisions(scores, threshold)
    fp = int(np.sum(flagged & (labels == 0)))
    fn = int(np.sum(~flagged & (labels == 1)))
    cost = error_cost(fp, fn, costs.false_positive_cost, costs.false_negative_cost)
    return 1000.0 * cost / len(labels)


def ledger(
    labels: np.ndarray,
    reference: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    costs: ThresholdConfig,
    bits: int,
    blob: bytes,
    float_blob: bytes,
) -> ErrorLedger:
    p = parity(reference, scores, threshold)
    size, float_size = size_of(blob), size_of(float_blob)
    cost = expected_cost_per_1000(labels, scores, threshold, costs)
    cost_ref = 1000.0 * _cost_exact(labels, reference, threshold, costs) / len(labels)
    return ErrorLedger(
        bits=bits,
        max_abs_delta_p=round(p.max_abs_delta_score, 12),
        decisions_flipped=p.decisions_flipped,
        flipped_fraction=round(p.decisions_flipped / len(labels), 6),
        delta_roc_auc=round(
            float(roc_auc_score(labels, scores) - roc_auc_score(labels, reference)), 9
        ),
        delta_expected_cost_per_1000=round(cost - cost_ref, 6),
        size=size,
        float_size=float_size,
        gzip_ratio_vs_float=round(size.gzip_bytes / float_size.gzip_bytes, 4),
    )


def _cost_exact(
    labels: np.ndarray, scores: np.ndarray, threshold: float, c: ThresholdConfig
) -> float:
    flagged = scores >= threshold
    fp = int(np.sum(flagged & (labels == 0)))
    fn = int(np.sum(~flagged & (labels == 1)))
    return error_cost(fp, fn, c.false_positive_cost, c.false_negative_cost)
