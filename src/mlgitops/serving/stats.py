"""The old name of `serving.online`, importable only until `serving/runtime.py` (being rewritten
on another branch of issue 21) imports `mlgitops.serving.online`; then delete this module."""

from mlgitops.serving.online import BatchStats, OnlineStats, RecentPredictions

__all__ = ["BatchStats", "OnlineStats", "RecentPredictions"]
