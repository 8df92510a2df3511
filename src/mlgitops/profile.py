"""The reference profile: what the training data looked like, feature by feature.

Written by the split stage from the training split. Serving derives its request schema from it
(feature names, kinds, which may be missing, known categories); monitoring compares live traffic
with its bins and frequencies.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlgitops.io import load_model_json


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericProfile(_Frozen):
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


class CategoricalProfile(_Frozen):
    kind: Literal["categorical"] = "categorical"
    count: int
    missing_rate: float
    # Share of non-missing rows per category, most frequent first; keys are normalize_category().
    frequencies: dict[str, float]
    # Share of rows in categories left out because the profile keeps at most N of them.
    truncated_fraction: float = 0.0


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class ReferenceProfile(_Frozen):
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


def load_profile(path: Path) -> ReferenceProfile:
    return load_model_json(ReferenceProfile, path)
