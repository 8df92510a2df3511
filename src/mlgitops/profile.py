"""The reference profile: what the training data looked like, feature by feature.

Built by the split stage from the training split (mlgitops.profiling: the build side, which the
pod never imports). Serving derives its request schema from it (feature names, kinds, which may be
missing, known categories); monitoring compares live traffic with its bins and frequencies.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from mlgitops.io import load_model_json
from mlgitops.model_base import FrozenModel


class NumericProfile(FrozenModel):
    kind: Literal["numeric"] = "numeric"
    count: int
    missing_rate: float
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    # Interior quantile edges; bin i holds values in [edges[i-1], edges[i]) with open outer ends.
    bin_edges: list[float]
    bin_fractions: list[float]


class CategoricalProfile(FrozenModel):
    kind: Literal["categorical"] = "categorical"
    count: int
    missing_rate: float
    # Share of non-missing rows per category, most frequent first; keys are normalize_category().
    frequencies: dict[str, float]
    # Share of rows in categories left out because the profile keeps at most N of them.
    truncated_fraction: float = 0.0


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class ReferenceProfile(FrozenModel):
    profile_version: Literal[1] = 1
    n_rows: int
    target: str
    positive_class: str
    label_rate: float
    # In model input order.
    features: dict[str, FeatureProfile]

    def allows_missing(self, feature: str) -> bool:
        """A feature may be null at serving time only if it was missing in training too."""
        return self.features[feature].missing_rate > 0.0


def normalize_category(value: object) -> str | None:
    """The one spelling of a category value, shared by training, profiling and serving.

    Integral floats lose their ".0" so a column read as float because of gaps still matches
    the integer codes a client sends. Missing values (None, NaN) map to None.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if hasattr(value, "item"):  # numpy scalars
        return normalize_category(value.item())
    return str(value)


# The one binning rule. Every count compared with the profile (monitoring now, the service's
# Prometheus counters later) goes through these functions, so bins mean the same thing everywhere.
# Numeric bins: "0".."B-1" over the interior edges (right-closed search, open outer ends), then
# "missing". Categorical bins: the profiled categories, "unseen" (not in the profile, including
# categories the profile truncated), then "missing".
MISSING_BIN = "missing"
UNSEEN_BIN = "unseen"


def bin_labels(feature: FeatureProfile) -> list[str]:
    """Bin names of a feature in index order (the `bin` label of the metrics)."""
    if isinstance(feature, NumericProfile):
        return [str(i) for i in range(len(feature.bin_edges) + 1)] + [MISSING_BIN]
    return [*feature.frequencies, UNSEEN_BIN, MISSING_BIN]


def reference_fractions(feature: FeatureProfile) -> np.ndarray:
    """Reference share of all rows per bin of `bin_labels`; sums to 1."""
    present = 1.0 - feature.missing_rate
    if isinstance(feature, NumericProfile):
        # All-missing in training: no edges, one bin that held nothing.
        shares = [f * present for f in feature.bin_fractions] or [0.0]
    else:
        shares = [f * present for f in feature.frequencies.values()]
        shares.append(feature.truncated_fraction * present)
    shares.append(feature.missing_rate)
    return np.asarray(shares, dtype="float64")


def bin_indices(feature: FeatureProfile, values: Any) -> np.ndarray:
    """Vectorised bin index of each value (an array or a pandas Series): floats (NaN = missing)
    for numeric features, normalised category strings (None/NaN = missing) for categorical."""
    labels_count = len(bin_labels(feature))
    missing = labels_count - 1
    if isinstance(feature, NumericProfile):
        numbers = np.asarray(values, dtype="float64")
        edges = np.asarray(feature.bin_edges, dtype="float64")
        index = np.searchsorted(edges, numbers, side="right")
        return np.where(np.isnan(numbers), missing, index).astype(np.int64)
    import pandas as pd  # only the vectorised path needs it; serving bins with bin_label

    series = (
        values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    )
    categories = list(feature.frequencies)
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        # Arrow's hash lookup on the Arrow-backed strings, without converting them to objects.
        known = pa.array(categories, type=pa.string())
        strings = pa.array(series)
        found = pc.index_in(strings, value_set=known.cast(strings.type))
        codes = pc.fill_null(found, -1).to_numpy().astype(np.int64)
    else:
        codes = pd.Index(categories).get_indexer(series.astype(object)).astype(np.int64)
    # -1: unseen, or missing (set next).
    index = np.where(codes >= 0, codes, missing - 1)
    index[series.isna().to_numpy()] = missing
    return index


def bin_label(feature: FeatureProfile, value: object) -> str:
    """The bin of one raw value (the per-request form of `bin_indices`)."""
    if isinstance(feature, NumericProfile):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING_BIN
        return str(bisect_right(feature.bin_edges, float(value)))  # type: ignore[arg-type]
    category = normalize_category(value)
    if category is None:
        return MISSING_BIN
    return category if category in feature.frequencies else UNSEEN_BIN


def load_profile(path: Path) -> ReferenceProfile:
    return load_model_json(ReferenceProfile, path)
