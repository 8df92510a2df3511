"""The state of one worker: the pinned model, loaded in the background and self-checked, its
metadata, request ids and the prediction and feedback logs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from mlgitops.config import ServingConfig
from mlgitops.errors import ArtifactError, MlgitopsError, ServingError
from mlgitops.io import load_pipeline
from mlgitops.logline import ExperimentFields, prediction_line
from mlgitops.records import ModelCard, load_model_card
from mlgitops.release import ReleaseRecord
from mlgitops.serving.layout import (
    MODEL_CARD_FILE,
    MODEL_FILES,
    PROFILE_FILE,
    REFERENCE_SCORES_FILE,
    SCHEMA_FILE,
)
from mlgitops.serving.model import (
    LoadedModel,
    build_exported_model,
    build_model,
    self_check,
    verify_hash,
)
from mlgitops.serving.predlog import JsonLinesLog

if TYPE_CHECKING:
    import numpy as np

    from mlgitops.serving.experiment import ExperimentPin, ExperimentScores
    from mlgitops.serving.features import Batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pinned:
    """Which model the service serves and the release it belongs to, fixed at build time (never
    `:latest`): `pinned.json` in the bento, as `build_bento` writes it."""

    bento_tag: str
    model_tag: str
    release: ReleaseRecord
    # A challenger served beside the model (serving.experiment); None: no experiment.
    experiment: ExperimentPin | None = None

    @classmethod
    def parse(cls, raw: object) -> Pinned:
        if not isinstance(raw, dict):
            raise ServingError("the pin must be a JSON object")
        model_tag = str(raw.get("model_tag", ""))
        name, _, version = model_tag.partition(":")
        if not name or not version or version == "latest":
            raise ServingError(f"pinned model tag {model_tag!r} must be name:version, not latest")
        bento_tag = raw.get("bento_tag")
        if not isinstance(bento_tag, str) or not bento_tag:
            raise ServingError("the pin names no bento_tag")
        try:
            release = ReleaseRecord.model_validate(raw.get("release"))
        except ValidationError as error:
            raise ServingError(f"the pinned release record is invalid: {error}") from None
        experiment = None
        if raw.get("experiment") is not None:
            from mlgitops.serving.experiment import ExperimentPin

            experiment = ExperimentPin.parse(raw["experiment"])
        return cls(bento_tag, model_tag, release, experiment)


def load_pinned(pin_file: Path, settings: ServingConfig) -> Pinned:
    """The bento's pin file; `settings.model_tag` and `bento_tag`, when set, replace its tags
    (development: another model of the store, still checked against the pinned release)."""
    try:
        raw = json.loads(pin_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServingError(f"{pin_file}: no pinned model (serve a built bento)") from None
    except json.JSONDecodeError as error:
        raise ServingError(f"{pin_file}: not valid JSON: {error}") from None
    if isinstance(raw, dict):
        tags = {"model_tag": settings.model_tag, "bento_tag": settings.bento_tag}
        raw.update({key: tag for key, tag in tags.items() if tag})
    try:
        return Pinned.parse(raw)
    except ServingError as error:
        raise ServingError(f"{pin_file}: {error}") from None


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """An answered request as the prediction log's writer gets it (one line per row)."""

    request_id: str
    client_request_id: str | None
    logged_at: float  # epoch seconds
    records: list[dict[str, Any]]
    scores: list[float]
    labels: list[int]
    experiment: ExperimentScores | None = None


def isotime(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class Runtime:
    """Everything one worker serves with. The model loads in a background thread; until it has
    loaded and passed its self-check, `ready` is False and /predict answers 503."""

    def __init__(self, pinned: Pinned, settings: ServingConfig) -> None:
        from mlgitops.serving.metrics import get_metrics

        self.pinned = pinned
        self.settings = settings
        # Every series names the release served (its pinned bento tag), so each release's
        # alerts stand apart while two run side by side in a rollout.
        self.metrics = get_metrics(pinned.bento_tag)
        self.model: LoadedModel | None = None
        # The experiment's challenger, loaded before the worker turns ready (None without one).
        self.experiment = pinned.experiment
        self.challenger: LoadedModel | None = None
        self.reuse_columns = False
        self.model_card: ModelCard | None = None
        self.error: str | None = None
        # Set once loading has ended, loaded or failed: requests wait on it (`wait_loaded`).
        self.loaded = threading.Event()
        # Stamped on the pod at deploy time: a release cannot name the commit that records it.
        self.git_commit = settings.git_commit
        # The API's credentials; a credential file named but not usable keeps the worker from
        # ever turning ready (it could not tell its clients apart), as a bad model does.
        from mlgitops.serving.auth import Credentials, RequestIds, load_credentials

        self.credential_error: str | None = None
        try:
            self.credentials = load_credentials(settings)
        except ServingError as error:
            self.credential_error = str(error)
            self.credentials = Credentials(None, None, RequestIds(None))
        self.prediction_log = JsonLinesLog(
            settings.prediction_log,
            settings.prediction_log_queue,
            render=self._render_predictions,
            on_drop=self.metrics.child("log_dropped").inc,
        )
        self.feedback_log = JsonLinesLog(settings.feedback_log, settings.prediction_log_queue)
        # Online monitoring (mlgitops.serving.online): the binning plan, set when the model loads,
        # and the served labels of recent rows, for joining /feedback.
        from mlgitops.serving.feedback import FeedbackDesk
        from mlgitops.serving.online import RecentPredictions

        self.online: Any = None
        self.recent = RecentPredictions(settings.feedback_join_rows, settings.feedback_join_bytes)
        self.feedback = FeedbackDesk(
            self.credentials.request_ids, self.recent, self.feedback_log, self.metrics
        )
        self._stalled: frozenset[str] = frozenset()

    @property
    def ready(self) -> bool:
        return self.model is not None

    def stalled_logs(self) -> frozenset[str]:
        """The logs (prediction, feedback) that have not kept up for `log_stall_seconds`: their
        writer stuck in a write or every write failing. The pod is not ready meanwhile, so
        traffic goes to pods whose logs keep up (each change is logged once)."""
        limit = self.settings.log_stall_seconds
        logs = {"prediction": self.prediction_log, "feedback": self.feedback_log}
        stalled = frozenset(name for name, log in logs.items() if log.stalled_for() > limit)
        if stalled != self._stalled:
            for name in sorted(stalled - self._stalled):
                log = logs[name]
                logger.error(
                    "%s log %s has not kept up for %.0f s (%s): not ready until it does",
                    name, log.sink, log.stalled_for(), log.error or "writer stuck",
                )  # fmt: skip
            for name in sorted(self._stalled - stalled):
                logger.warning("%s log %s keeps up again: ready", name, logs[name].sink)
            self._stalled = stalled
        return stalled

    def new_request_id(self, rows: int) -> str:
        """A random request id of `rows` rows, signed (mlgitops.serving.auth)."""
        return self.credentials.request_ids.mint(rows)

    def start(self, background: bool = True) -> None:
        self.prediction_log.start()
        self.feedback_log.start()
        if background:
            threading.Thread(target=self.load, name="model-loader", daemon=True).start()
        else:
            self.load()

    def load(self) -> None:
        try:
            if self.credential_error is not None:
                raise ServingError(self.credential_error)
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
        finally:
            self.loaded.set()

    def _load(self) -> LoadedModel:
        model, stored, profile, card = self._load_entry(self.pinned.model_tag, self.pinned.release)
        self.model_card = card
        if self.experiment is not None:
            self._load_challenger(self.experiment, model)
        self._prepare_monitoring(stored, profile)
        return model

    def _load_entry(self, tag: str, release: ReleaseRecord) -> tuple[LoadedModel, Any, Any, Any]:
        """A model store entry as a checked LoadedModel, with the entry, its profile and card."""
        from mlgitops.profile import load_profile
        from mlgitops.schema import load_schema

        stored = _stored_model(tag)
        card = load_model_card(Path(stored.path_of(MODEL_CARD_FILE)))
        model_file = Path(stored.path_of(MODEL_FILES[release.model_format]))
        # A damaged or swapped file is refused before it is unpickled (or parsed).
        verify_hash(model_file, release.model_hash)
        profile = load_profile(Path(stored.path_of(PROFILE_FILE)))
        if release.model_format == "onnx":
            model = self._load_exported(stored, model_file, profile, release.threshold)
        else:
            pipeline = load_pipeline(model_file)
            model = build_model(pipeline, profile, release.threshold)
            self_check(model, pipeline)
        # The data's id, time and dropped columns are accepted (and echoed/logged), not scored.
        schema = load_schema(Path(stored.path_of(SCHEMA_FILE)))
        space = model.space.with_passthrough(
            schema.id_column, schema.time_column, tuple(schema.dropped_columns)
        )
        if self.settings.limits:
            space = space.with_limits(self.settings.max_id_length, self.settings.max_string_length)
        return replace(model, space=space), stored, profile, card

    def _load_challenger(self, experiment: ExperimentPin, champion: LoadedModel) -> None:
        from mlgitops.config import experiment_key_error
        from mlgitops.serving.experiment import same_features

        columns = [*champion.space.names, *champion.space.passthrough]
        error = experiment_key_error(experiment.assignment_key, columns)
        if error is not None:
            raise ServingError(error)
        release = experiment.challenger_release
        self.challenger, _, _, _ = self._load_entry(experiment.challenger_model_tag, release)
        self.reuse_columns = same_features(champion, self.challenger)
        self.metrics.prepare_experiment()
        logger.info(
            "experiment %s: challenger %s (%s), share %g, key %s",
            experiment.mode,
            experiment.challenger_model_tag,
            experiment.challenger_revision,
            experiment.share,
            experiment.assignment_key,
        )

    def _prepare_monitoring(self, stored: Any, profile: Any) -> None:
        from mlgitops.monitoring.reference import load_score_reference
        from mlgitops.serving.layout import SCORE_REFERENCE_FILE
        from mlgitops.serving.online import OnlineStats

        reference_file = Path(stored.path_of(SCORE_REFERENCE_FILE))
        # Bentos built before the reference shipped have none: feature bins only, then.
        reference = load_score_reference(reference_file) if reference_file.is_file() else None
        if reference is None:
            logger.warning("no %s in the model: no score bins or expected outcomes", reference_file)
        self.online = OnlineStats(profile, reference)
        release = self.pinned.release
        info = {
            "bento_tag": self.pinned.bento_tag,
            "model_hash": release.model_hash,
            "data_hash": release.data_hash,
            "git_commit": self.git_commit or "",
        }
        self.metrics.prepare_monitoring(self.online, info)

    def record(
        self,
        batch: Batch,
        scores: np.ndarray,
        answered: list[float],
        labels: list[int],
        request_id: str,
        client_request_id: str | None,
        experiment: ExperimentScores | None = None,
    ) -> None:
        """A request's bookkeeping once it is answered, for either route: its metrics (and
        arms), the monitoring counters, its labels kept for /feedback, its log lines.
        `answered`: the scores as floats, as the client got them."""
        self.metrics.observe_batch(labels, answered, batch.missing, batch.unseen)
        if experiment is not None:
            shadowed = len(batch) if experiment.shadow_scores is not None else 0
            self.metrics.observe_arms(experiment.arms, shadowed)
        online = self.online
        if online is not None:
            self.metrics.observe_monitoring(online.batch(batch.columns, scores, labels))
        self.recent.add(request_id, labels, batch.ids)
        # The time is formatted by the writer thread, off the request path.
        entry = LoggedRequest(
            request_id, client_request_id, time.time(), batch.records, answered, labels, experiment
        )
        self.prediction_log.submit(entry, weight=len(batch))

    def _load_exported(
        self, stored: Any, model_file: Path, profile: Any, threshold: float
    ) -> LoadedModel:
        """The export stage's model.onnx, checked against the pipeline's recorded scores."""
        reference_file = Path(stored.path_of(REFERENCE_SCORES_FILE))
        try:
            reference = json.loads(reference_file.read_bytes())
        except FileNotFoundError:
            raise ArtifactError(f"{reference_file}: no reference scores to self-check") from None
        except json.JSONDecodeError as error:
            raise ArtifactError(f"{reference_file}: not valid JSON: {error}") from None
        return build_exported_model(model_file.read_bytes(), profile, threshold, reference)

    def metadata(self) -> dict[str, Any]:
        release = self.pinned.release
        model = self.model
        return {
            "bento_tag": self.pinned.bento_tag,
            "model_version": self.pinned.bento_tag,
            "model_tag": self.pinned.model_tag,
            "model_hash": release.model_hash,
            # Which artifact serves: the pipeline (compiled at load) or the exported model.onnx.
            "model_format": release.model_format,
            "model_file": MODEL_FILES[release.model_format],
            "source_model_hash": release.source_model_hash,
            "data_hash": release.data_hash,
            "params_hash": release.params_hash,
            "params": self.model_card.train_params if self.model_card else None,
            "model_type": self.model_card.model_type if self.model_card else None,
            "git_commit": self.git_commit,
            "metrics": release.metrics,
            "threshold": release.threshold,
            "threshold_policy": release.threshold_policy,
            "data_until": release.data_until,
            "trained_at": release.trained_at,
            "image": release.image,
            "mlgitops_version": release.mlgitops_version,
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
            "prediction_log": _log_state(self.settings.prediction_log, self.prediction_log),
            "feedback_log": _log_state(self.settings.feedback_log, self.feedback_log),
            # Which credentials are set (never their values or paths).
            "auth": {
                "predict_token": self.credentials.predict is not None,
                "feedback_token": self.credentials.feedback is not None,
                "request_id_key": "shared" if self.credentials.request_ids.shared else "worker",
            },
            "experiment": self._experiment_metadata(),
        }

    def _experiment_metadata(self) -> dict[str, Any] | None:
        experiment = self.experiment
        if experiment is None:
            return None
        release = experiment.challenger_release
        return {
            "mode": experiment.mode,
            "share": experiment.share,
            "assignment_key": experiment.assignment_key,
            "salt": experiment.salt,
            "champion": {
                "model_version": self.pinned.bento_tag,
                "model_tag": self.pinned.model_tag,
                "model_hash": self.pinned.release.model_hash,
                "threshold": self.pinned.release.threshold,
            },
            "challenger": {
                "revision": experiment.challenger_revision,
                "model_version": experiment.challenger_bento_tag,
                "model_tag": experiment.challenger_model_tag,
                "model_hash": release.model_hash,
                "threshold": release.threshold,
                "metrics": release.metrics,
                "loaded": self.challenger is not None,
            },
            "predictions": self.metrics.experiment_counts(),
        }

    def _render_predictions(self, entry: LoggedRequest) -> Iterable[bytes]:
        space = self.model.space if self.model is not None else None
        id_column = space.id_column if space else None
        time_column = space.time_column if space else None
        passthrough = frozenset(space.passthrough) if space else frozenset()
        when = isotime(entry.logged_at)
        versions = self._row_versions(entry)
        experiment = self._experiment_fields(entry)
        client_request_id = entry.client_request_id
        dumps = orjson.dumps
        for row, (record, score, label) in enumerate(
            zip(entry.records, entry.scores, entry.labels, strict=True)
        ):
            entity = event_time = None
            if passthrough and not passthrough.isdisjoint(record):
                # The monitor reads the entity id and the event time beside the features.
                if id_column is not None:
                    entity = record.get(id_column)
                if time_column is not None:
                    event_time = record.get(time_column)
                record = {k: v for k, v in record.items() if k not in passthrough}
            yield dumps(
                prediction_line(
                    id=entity,
                    event_time=event_time,
                    request_id=entry.request_id,
                    row=row,
                    time=when,
                    model_version=versions[row],
                    features=record,
                    score=score,
                    label=label,
                    client_request_id=client_request_id,
                    experiment=experiment[row] if experiment is not None else None,
                )
            )

    def _row_versions(self, entry: LoggedRequest) -> list[str]:
        """The version that answered each row: the challenger's for its arm's rows."""
        champion = self.pinned.bento_tag
        experiment = self.experiment
        if entry.experiment is None or experiment is None:
            return [champion] * len(entry.records)
        from mlgitops.experiment.assign import CHALLENGER

        challenger = experiment.challenger_bento_tag
        return [challenger if arm == CHALLENGER else champion for arm in entry.experiment.arms]

    def _experiment_fields(self, entry: LoggedRequest) -> list[ExperimentFields] | None:
        """Per row under an experiment: its arm, both versions, the unit (the key's value,
        unless it is the id) and, in shadow mode, the challenger's score and decision."""
        scored, experiment = entry.experiment, self.experiment
        if scored is None or experiment is None:
            return None
        from mlgitops.experiment.assign import unit_value

        champion, challenger = self.pinned.bento_tag, experiment.challenger_bento_tag
        key = experiment.assignment_key
        space = self.model.space if self.model is not None else None
        log_unit = space is None or key != space.id_column
        shadow_scores, shadow_labels = scored.shadow_scores, scored.shadow_labels
        if shadow_scores is None or shadow_labels is None:
            shadow_scores = shadow_labels = None
        if not log_unit and shadow_scores is None:
            # Rows differ by arm only: one set of fields per arm (built positionally: per row).
            by_arm = {arm: ExperimentFields(arm, champion, challenger) for arm in set(scored.arms)}
            return [by_arm[arm] for arm in scored.arms]
        records = entry.records
        return [
            ExperimentFields(
                arm,
                champion,
                challenger,
                log_unit,
                unit_value(records[row].get(key)) if log_unit else None,
                shadow_scores[row] if shadow_scores is not None else None,
                shadow_labels[row] if shadow_labels is not None else None,
            )
            for row, arm in enumerate(scored.arms)
        ]

    def close(self) -> None:
        self.prediction_log.close()
        self.feedback_log.close()


def _log_state(sink: str, log: JsonLinesLog) -> dict[str, Any]:
    return {
        "sink": sink,
        "written": log.written,
        "dropped": log.dropped,
        "pending": log.pending,
        "error": log.error,
        "failing_since": isotime(log.failing_since) if log.failing_since is not None else None,
    }


def _stored_model(tag: str) -> Any:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(tag)
    except NotFound:
        raise ArtifactError(f"model {tag} is not in the model store") from None
