"""The state of one worker: the pinned model, loaded in the background and self-checked, its
metadata, request ids and the prediction and feedback logs."""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mlgitops import __version__
from mlgitops.config import ServingConfig
from mlgitops.errors import ArtifactError, MlgitopsError, ServingError
from mlgitops.io import load_pipeline
from mlgitops.serving.model import LoadedModel, build_model, self_check, verify_hash
from mlgitops.serving.predlog import JsonLinesLog

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pinned:
    """Which model the service serves, fixed at build time (never `:latest`)."""

    bento_tag: str
    model_tag: str
    release: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Pinned:
        model_tag = str(raw.get("model_tag", ""))
        name, _, version = model_tag.partition(":")
        if not name or not version or version == "latest":
            raise ServingError(f"pinned model tag {model_tag!r} must be name:version, not latest")
        bento_tag = str(raw.get("bento_tag") or model_tag)
        return cls(bento_tag, model_tag, dict(raw.get("release") or {}))


def load_pinned(pin_file: Path, settings: ServingConfig) -> Pinned:
    """The tag from `settings.model_tag` (development), else from the bento's pin file."""
    if settings.model_tag:
        return Pinned.parse({"model_tag": settings.model_tag, "bento_tag": settings.bento_tag})
    try:
        raw = json.loads(pin_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServingError(
            f"{pin_file}: no pinned model (serve a built bento, or set "
            f"{ServingConfig.env_name('model_tag')})"
        ) from None
    except json.JSONDecodeError as error:
        raise ServingError(f"{pin_file}: not valid JSON: {error}") from None
    return Pinned.parse(raw)


def isotime(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class Runtime:
    """Everything one worker serves with. The model loads in a background thread; until it has
    loaded and passed its self-check, `ready` is False and /predict answers 503."""

    def __init__(
        self,
        pinned: Pinned,
        settings: ServingConfig,
        model_dir: Callable[[str], Path] | None = None,
    ) -> None:
        from mlgitops.serving.metrics import get_metrics

        self.pinned = pinned
        self.settings = settings
        self.metrics = get_metrics()
        self.model: LoadedModel | None = None
        self.model_metadata: dict[str, Any] = {}
        self.model_card: dict[str, Any] = {}
        self.error: str | None = None
        self.git_commit = settings.git_commit or pinned.release.get("git_commit")
        self._model_dir = model_dir or _bentoml_model_dir
        # Request ids: a random prefix per worker and a counter. Unique across workers, pods and
        # restarts with overwhelming probability, and far cheaper per request than uuid4.
        self._id_prefix = os.urandom(8).hex()
        self._ids = itertools.count(1)
        self.prediction_log = JsonLinesLog(
            settings.prediction_log,
            settings.prediction_log_queue,
            render=self._render_predictions,
            on_drop=self.metrics.log_dropped.inc,
        )
        self.feedback_log = JsonLinesLog(settings.feedback_log, settings.prediction_log_queue)

    @property
    def ready(self) -> bool:
        return self.model is not None

    def new_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids):x}"

    def start(self, background: bool = True) -> None:
        self.prediction_log.start()
        self.feedback_log.start()
        if background:
            threading.Thread(target=self.load, name="model-loader", daemon=True).start()
        else:
            self.load()

    def load(self) -> None:
        try:
            self.model = self._load()
            logger.info(
                "model %s ready (runtime %s, self-check difference %.2g)",
                self.pinned.model_tag,
                self.model.scorer.runtime,
                self.model.self_check_difference,
            )
        except (MlgitopsError, OSError, ValueError, KeyError, TypeError) as error:
            self.error = f"{type(error).__name__}: {error}"
            logger.error("model %s not loaded, not ready: %s", self.pinned.model_tag, self.error)
        except Exception as error:  # never ready on anything unexpected either
            self.error = f"{type(error).__name__}: {error}"
            logger.exception("model %s not loaded, not ready", self.pinned.model_tag)

    def _load(self) -> LoadedModel:
        from mlgitops.profile import load_profile
        from mlgitops.serving.layout import MODEL_FILE, PROFILE_FILE

        directory = self._model_dir(self.pinned.model_tag)
        metadata_file = directory / "model.yaml"
        self.model_metadata = _read_model_metadata(metadata_file)
        self.model_card = _read_model_card(directory)
        model_file = directory / MODEL_FILE
        expected = self.model_metadata.get("model_hash") or self.pinned.release.get("model_hash")
        if not expected:
            # Without the release's hash a damaged file could not be told from the real one.
            raise ArtifactError(f"model {self.pinned.model_tag} records no model_hash")
        verify_hash(model_file, str(expected))
        pipeline = load_pipeline(model_file)
        profile = load_profile(directory / PROFILE_FILE)
        threshold = self.model_metadata.get("threshold", self.pinned.release.get("threshold"))
        if threshold is None:
            raise ArtifactError(f"model {self.pinned.model_tag} has no threshold in its metadata")
        model = build_model(pipeline, profile, float(threshold))
        self_check(model, pipeline)
        return model

    def metadata(self) -> dict[str, Any]:
        meta = {**self.pinned.release, **self.model_metadata}
        model = self.model
        return {
            "bento_tag": self.pinned.bento_tag,
            "model_version": self.pinned.bento_tag,
            "model_tag": self.pinned.model_tag,
            "model_hash": meta.get("model_hash"),
            "data_hash": meta.get("data_hash"),
            "params_hash": meta.get("params_hash"),
            "params": meta.get("params")
            or self.model_card.get("train_params")
            or self.model_card.get("params"),
            "model_type": self.model_card.get("model_type"),
            "git_commit": self.git_commit,
            "metrics": meta.get("metrics"),
            "threshold": meta.get("threshold"),
            "threshold_policy": meta.get("threshold_policy"),
            "trained_at": meta.get("trained_at"),
            "image": meta.get("image"),
            "mlgitops_version": meta.get("mlgitops_version", __version__),
            "ready": model is not None,
            "error": self.error,
            "runtime": model.scorer.runtime if model else None,
            "self_check_difference": model.self_check_difference if model else None,
            "features": [
                {"name": f.name, "kind": f.kind, "allows_missing": f.allows_missing}
                for f in model.space.features
            ]
            if model
            else None,
            "max_batch_size": self.settings.max_batch_size,
            "prediction_log": {
                "sink": self.settings.prediction_log,
                "written": self.prediction_log.written,
                "dropped": self.prediction_log.dropped,
                "error": self.prediction_log.error,
            },
        }

    def _render_predictions(self, item: tuple[Any, ...]) -> Iterable[bytes]:
        request_id, epoch, records, scores, labels = item
        version = self.pinned.bento_tag
        when = isotime(epoch)
        dumps = orjson.dumps
        for row, (record, score, label) in enumerate(zip(records, scores, labels, strict=True)):
            yield dumps(
                {
                    "request_id": request_id,
                    "row": row,
                    "time": when,
                    "model_version": version,
                    "features": record,
                    "score": score,
                    "label": label,
                }
            )

    def close(self) -> None:
        self.prediction_log.close()
        self.feedback_log.close()


def _read_model_metadata(model_yaml: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(model_yaml.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{model_yaml}: not found; is the model in the store?") from None
    except yaml.YAMLError as error:
        raise ArtifactError(f"{model_yaml}: not valid YAML: {error}") from None
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    return dict(metadata) if isinstance(metadata, dict) else {}


def _read_model_card(directory: Path) -> dict[str, Any]:
    """The train stage's model card if the model carries one; /metadata shows its params."""
    from mlgitops.serving.layout import MODEL_CARD_FILE

    try:
        raw = json.loads((directory / MODEL_CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _bentoml_model_dir(tag: str) -> Path:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(tag).path)
    except NotFound:
        raise ArtifactError(f"model {tag} is not in the model store") from None
