"""The old name of `monitoring.drift_stats`, importable only until `monitoring/check.py` (being
rewritten on another branch of issue 21) imports `drift_stats` and `mlgitops.stats.wilson`
directly; then delete this module."""

from mlgitops.monitoring.drift_stats import (
    SMOOTHING,
    TestResult,
    adjust,
    benjamini_hochberg,
    chi2_homogeneity,
    chi2_quantile,
    cusum,
    holm,
    js_distance,
    ks_binned,
    psi,
    psi_dof,
    psi_null_quantile,
    psi_threshold,
    smoothed_shares,
)
from mlgitops.stats import two_sided_z, wilson

__all__ = [
    "SMOOTHING",
    "TestResult",
    "adjust",
    "benjamini_hochberg",
    "chi2_homogeneity",
    "chi2_quantile",
    "cusum",
    "holm",
    "js_distance",
    "ks_binned",
    "psi",
    "psi_dof",
    "psi_null_quantile",
    "psi_threshold",
    "smoothed_shares",
    "two_sided_z",
    "wilson",
]
