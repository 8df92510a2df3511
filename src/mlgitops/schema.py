"""The training schema: which columns are features, of which kind, and the target.

Written by the validate stage, read by split/train and, through the reference profile, by serving.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mlgitops.errors import ArtifactError

FeatureKind = Literal["numeric", "categorical"]
ModelT = TypeVar("ModelT", bound=BaseModel)


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: FeatureKind
    # How the type was decided: declared in params.yaml or inferred from the data.
    source: Literal["declared", "inferred"]


class TrainingSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    target: str
    positive_class: str
    time_column: str | None
    features: tuple[FeatureSpec, ...]
    dropped_columns: tuple[str, ...]

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]


def save_model_json(model: BaseModel, path: Path) -> None:
    """Write a pydantic model as pretty JSON atomically, so a crash never leaves half a file."""
    from mlgitops.io import atomic_write_text

    atomic_write_text(path, model.model_dump_json(indent=2) + "\n")


def load_model_json(cls: type[ModelT], path: Path) -> ModelT:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not found (run `dvc repro` first)") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: not valid JSON: {error}") from None
    try:
        return cls.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(p) for p in first["loc"])
        raise ArtifactError(f"{path}: {location}: {first['msg']}") from None


def load_schema(path: Path) -> TrainingSchema:
    return load_model_json(TrainingSchema, path)
