"""The training schema: which columns are features, of which kind, and the target.

Written by the validate stage, read by split/train and, through the reference profile, by serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mlgitops.io import load_model_json
from mlgitops.model_base import FrozenModel

FeatureKind = Literal["numeric", "categorical"]

# Column names of the split files (artifacts/split/*.parquet) beside the features: the encoded
# 0/1 target and, when `data.time_column` is set, the event time as UTC timestamps.
TARGET_COLUMN = "__target__"
TIME_COLUMN = "__time__"


class FeatureSpec(FrozenModel):
    name: str
    kind: FeatureKind
    # How the type was decided: declared in params.yaml or inferred from the data.
    source: Literal["declared", "inferred"]


class TrainingSchema(FrozenModel):
    schema_version: Literal[1] = 1
    target: str
    positive_class: str
    time_column: str | None
    features: tuple[FeatureSpec, ...]
    dropped_columns: tuple[str, ...]
    # data.id_column (one of dropped_columns); None in schemas written before it existed.
    id_column: str | None = None

    @property
    def passthrough_columns(self) -> list[str]:
        """Columns of the data that are not features (id, time, dropped) and that a request may
        carry: the service accepts them and never feeds them to the model."""
        names = [c for c in (self.id_column, self.time_column) if c]
        return names + [c for c in self.dropped_columns if c not in names]

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]


def load_schema(path: Path) -> TrainingSchema:
    return load_model_json(TrainingSchema, path)
