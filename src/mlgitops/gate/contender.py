"""The two sides of the gate: the released model of a commit (read from Git objects and the DVC
cache or remote, checked against its release record) and this tree's model."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from mlgitops.config import Params
from mlgitops.errors import ArtifactError, GateError, validation_line
from mlgitops.git import read_blob
from mlgitops.io import file_sha256, load_pipeline
from mlgitops.records import ModelCard, load_metrics, load_model_card
from mlgitops.release import ReleaseRecord
from mlgitops.revision import dvc_file_at, find_release_at, params_at, path_at, release_path
from mlgitops.schema import FeatureSpec


@dataclass(frozen=True)
class Contender:
    """One side of the comparison: a fitted pipeline, the features it reads, its threshold."""

    pipeline: object
    features: tuple[FeatureSpec, ...]
    threshold: float
    model_hash: str
    bento_tag: str | None = None
    target: str | None = None
    positive_class: str | int | bool | None = None

    def scores(self, frame: pd.DataFrame, current: dict[str, FeatureSpec], who: str) -> np.ndarray:
        missing = [f.name for f in self.features if f.name not in frame.columns]
        if missing:
            raise GateError(
                f"the {who} reads columns the test split lacks: {', '.join(missing)} "
                "(set gate.base to a release with a compatible schema, or null)"
            )
        for feature in self.features:
            now = current.get(feature.name)
            if now is not None and now.kind != feature.kind:
                raise GateError(
                    f"the {who} treats column {feature.name!r} as {feature.kind}, the test split "
                    f"as {now.kind}: the two models cannot score the same rows"
                )
        names = [f.name for f in self.features]
        return self.pipeline.predict_proba(frame[names])[:, 1]  # type: ignore[attr-defined]


def _joblib_load(data: bytes) -> object:
    import joblib

    return joblib.load(io.BytesIO(data))


def contender_at(
    repo: Path, commit: str, load: Callable[[bytes], object] = _joblib_load
) -> tuple[Contender, ReleaseRecord, dict] | None:
    """The released model of `commit` (None when it has no release record), read from Git
    objects and the DVC cache or remote, checked against the release's model hash. `load`
    turns the checked bytes into something with `predict_proba` (`mlgitops report pr` scores
    an untrusted head's pickle in a sandboxed process: mlgitops.reports.sandbox)."""
    raw = params_at(repo, commit)
    release = find_release_at(repo, commit, release_path(raw, commit))
    if release is None:
        return None
    model_path = path_at(raw, commit, "model")
    card_path = path_at(raw, commit, "model_card")
    data = dvc_file_at(repo, commit, model_path)
    if "sha256:" + hashlib.sha256(data).hexdigest() != release.model_hash:
        raise ArtifactError(
            f"{commit[:12]}:{model_path} is not the model its release names "
            f"({release.model_hash}): dvc.lock and the release record disagree at that commit "
            "(commit them together)"
        )
    card_text = read_blob(repo, commit, card_path)
    if card_text is None:
        raise ArtifactError(f"{commit[:12]} has no model card {card_path}")
    try:
        card = ModelCard.model_validate_json(card_text)
    except ValidationError as error:  # e.g. a card older than ModelCard
        raise ArtifactError(
            f"{commit[:12]}:{card_path}: not a model card: {validation_line(error)}"
        ) from None
    try:
        pipeline = load(data)
    except Exception as error:  # a foreign pickle can raise almost anything
        raise ArtifactError(f"{commit[:12]}:{model_path}: cannot load the model: {error}") from None
    block = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    contender = Contender(
        pipeline=pipeline,
        features=card.features,
        threshold=release.threshold,
        model_hash=release.model_hash,
        bento_tag=release.bento_tag,
        target=block.get("target"),
        positive_class=block.get("positive_class"),
    )
    return contender, release, raw


def workspace_challenger(params: Params) -> Contender:
    """This tree's model, as the evaluate stage left it."""
    card = load_model_card(params.paths.model_card)
    model_hash = "sha256:" + file_sha256(params.paths.model)
    if card.model_hash != model_hash:
        raise ArtifactError(
            f"{params.paths.model_card}: describes model {card.model_hash}, but "
            f"{params.paths.model} is {model_hash} (run `dvc repro`)"
        )
    return Contender(
        pipeline=load_pipeline(params.paths.model),
        features=card.features,
        threshold=load_metrics(params.paths.metrics).threshold,
        model_hash=model_hash,
        target=params.data.target,
        positive_class=params.data.positive_class,
    )
