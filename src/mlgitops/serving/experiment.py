"""A challenger served beside the champion, as `experiment:` in params declared it at build time.

The pin (`pinned.json`) carries an `experiment` section when one is on: mode, share, salt,
assignment key and the challenger's model tag and release. Each request row is assigned by the
salted hash of its key (`mlgitops.experiment.assign`): in `ab` mode the challenger answers the
rows of its share of keys; in `shadow` mode both score every row, the champion answers and the
challenger's score and decision are only logged. Without an experiment none of this runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlgitops.errors import ServingError, validation_line
from mlgitops.experiment.assign import CHALLENGER, CHAMPION, assign
from mlgitops.serving.features import Batch, RequestError, validate_records
from mlgitops.serving.model import LoadedModel


@dataclass(frozen=True)
class ExperimentPin:
    mode: Literal["ab", "shadow"]
    share: float
    salt: str
    assignment_key: str
    # The Git revision the challenger's release was read from, for /metadata and the logs.
    challenger_revision: str
    challenger_bento_tag: str
    challenger_model_tag: str
    challenger_release: Any  # ReleaseRecord

    @classmethod
    def parse(cls, raw: object) -> ExperimentPin:
        from pydantic import ValidationError

        from mlgitops.release import ReleaseRecord

        if not isinstance(raw, dict):
            raise ServingError("experiment: the pin's experiment must be a JSON object")
        mode, share = raw.get("mode"), raw.get("share")
        if mode not in ("ab", "shadow"):
            raise ServingError(f"experiment.mode: {mode!r} is not ab or shadow")
        if not isinstance(share, int | float) or not 0.0 < float(share) < 1.0:
            raise ServingError(f"experiment.share: {share!r} is not in (0, 1)")
        texts = {}
        for key in ("salt", "assignment_key", "challenger_revision", "challenger_bento_tag"):
            value = raw.get(key)
            if not isinstance(value, str) or not value:
                raise ServingError(f"experiment.{key}: missing from the pin")
            texts[key] = value
        model_tag = str(raw.get("challenger_model_tag", ""))
        name, _, version = model_tag.partition(":")
        if not name or not version or version == "latest":
            raise ServingError(f"experiment.challenger_model_tag {model_tag!r}: not name:version")
        try:
            release = ReleaseRecord.model_validate(raw.get("challenger_release"))
        except ValidationError as error:
            raise ServingError(
                f"experiment.challenger_release: invalid: {validation_line(error)}"
            ) from None
        return cls(
            mode=mode,
            share=float(share),
            challenger_model_tag=model_tag,
            challenger_release=release,
            **texts,
        )

    def as_json(self) -> dict[str, Any]:
        """The pin's `experiment` section (what `build_bento` writes and `parse` reads)."""
        return {
            "mode": self.mode,
            "share": self.share,
            "salt": self.salt,
            "assignment_key": self.assignment_key,
            "challenger_revision": self.challenger_revision,
            "challenger_bento_tag": self.challenger_bento_tag,
            "challenger_model_tag": self.challenger_model_tag,
            "challenger_release": self.challenger_release.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class ExperimentScores:
    """A batch scored under the experiment: the answered scores and labels, each row's arm and,
    in shadow mode, the challenger's scores and labels (None when it could not score them)."""

    scores: np.ndarray
    labels: list[int]
    arms: list[str]
    shadow_scores: list[float] | None = None
    shadow_labels: list[int] | None = None


def rows_of(batch: Batch, rows: list[int]) -> Batch:
    """The batch restricted to `rows` (validated columns reused, not validated again)."""
    return Batch(
        records=[batch.records[i] for i in rows],
        columns=[[column[i] for i in rows] for column in batch.columns],
        ids=None if batch.ids is None else [batch.ids[i] for i in rows],
    )


def same_features(champion: LoadedModel, challenger: LoadedModel) -> bool:
    """Whether the challenger reads the champion's validated columns as they are."""
    pairs = zip(champion.space.features, challenger.space.features, strict=False)
    return len(champion.space.features) == len(challenger.space.features) and all(
        a.name == b.name and a.kind == b.kind for a, b in pairs
    )


def _challenger_batch(batch: Batch, challenger: LoadedModel, reuse: bool) -> Batch:
    return batch if reuse else validate_records(batch.records, challenger.space)


def _decide(scores: np.ndarray, threshold: float) -> list[int]:
    return (scores >= threshold).astype(np.int8).tolist()


def score_experiment(
    pin: ExperimentPin,
    champion: LoadedModel,
    challenger: LoadedModel,
    batch: Batch,
    reuse: bool,
) -> ExperimentScores:
    """Assign and score `batch`; `reuse`: the challenger reads the champion's columns (see
    `same_features`). Raises RequestError when, in ab mode, the challenger refuses its rows."""
    if pin.mode == "shadow":
        scores = champion.scores(batch)
        labels = _decide(scores, champion.threshold)
        arms = [CHAMPION] * len(batch)
        try:
            shadow = challenger.scores(_challenger_batch(batch, challenger, reuse))
        except RequestError:
            # A shadow never changes an answer: rows it cannot read log no shadow score.
            return ExperimentScores(scores, labels, arms, None, None)
        return ExperimentScores(
            scores, labels, arms, shadow.tolist(), _decide(shadow, challenger.threshold)
        )
    key = pin.assignment_key
    arms = [assign(pin.salt, pin.share, record.get(key)) for record in batch.records]
    picked = [i for i, arm in enumerate(arms) if arm == CHALLENGER]
    if not picked:
        scores = champion.scores(batch)
        return ExperimentScores(scores, _decide(scores, champion.threshold), arms)
    if len(picked) == len(arms):
        scores = challenger.scores(_challenger_batch(batch, challenger, reuse))
        return ExperimentScores(scores, _decide(scores, challenger.threshold), arms)
    others = [i for i, arm in enumerate(arms) if arm != CHALLENGER]
    scores = np.empty(len(batch), dtype=np.float64)
    thresholds = np.empty(len(batch), dtype=np.float64)
    scores[others] = champion.scores(rows_of(batch, others))
    thresholds[others] = champion.threshold
    scores[picked] = challenger.scores(_challenger_batch(rows_of(batch, picked), challenger, reuse))
    thresholds[picked] = challenger.threshold
    return ExperimentScores(scores, (scores >= thresholds).astype(np.int8).tolist(), arms)
