"""params.yaml is read and validated here, and only here; so are the server's settings.

Every other module receives typed objects. Every artifact path lives in the `paths:` section of
params.yaml; dvc.yaml interpolates the same keys (`${paths.model}`), so a path is written once.
The server's settings (`ServingConfig`) come from `serving:` in params.yaml for `mlgitops serve`
and from `MLGITOPS_<FIELD>` variables in a container, which has no params.yaml.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlgitops.errors import ConfigError, ServingError, error_location
from mlgitops.model_base import FrozenModel

DEFAULT_PARAMS_FILE = Path("params.yaml")

ColumnType = Literal["numeric", "categorical", "drop"]
Probability = Annotated[float, Field(gt=0.0, lt=1.0)]
ModelFamily = Literal["hist_gradient_boosting", "logistic_regression", "random_forest"]


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice `word` most probably misspells (difflib's ratio at least `cutoff`), if any."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return match[0] if match else None


class PathsConfig(FrozenModel):
    validation_report: Path
    schema_file: Path
    train: Path
    # Rows for choices made after fitting (threshold, tuning's pick); never used for reporting.
    validation: Path
    test: Path
    profile: Path
    model: Path
    model_card: Path
    # The evaluation record (test and validation figures, the exact threshold): what the
    # report, summary, gate, export and serving read. `dvc metrics show` lists headline_* only.
    metrics: Path
    plots: Path
    bento_archive: Path
    release: Path
    k8s_release_patch: Path
    # Stage `export`: ONNX, quantized, pruned, C and JS artifacts, and their ledger.
    export_dir: Path = Path("artifacts/export")
    export_metrics: Path = Path("reports/export.json")
    # Stage `report`: the stakeholder report and its JSON twin.
    report_html: Path = Path("reports/model_report.html")
    report_json: Path = Path("reports/model_report.json")
    # Stage `tune`: the chosen train config with its CV summary, and the trial history (plot).
    tuned_params: Path = Path("artifacts/tuned_params.json")
    # Stage `gate`: the verdict with its figures (the gate record) and the Markdown summary.
    gate_metrics: Path = Path("reports/gate.json")
    gate_report: Path = Path("reports/gate.md")
    tune_trials: Path = Path("plots/tune_trials.json")
    # The locked dependency closure (`make lock`); the bento pins its runtime libraries from it.
    requirements_lock: Path = Path("requirements.lock")
    # Monitoring; defaults keep params.yaml of older commits readable.
    score_reference: Path = Path("artifacts/monitoring/score_reference.json")
    # The calibration's check on the test split (Brier, reliability), from score_reference.
    calibration_metrics: Path = Path("reports/calibration.json")
    prometheus_rules: Path = Path("k8s/monitoring/rules.yaml")
    prometheus_rule_resource: Path = Path("k8s/monitoring/prometheusrule.yaml")
    monitor_summary: Path = Path("reports/monitor/summary.json")
    monitor_report: Path = Path("reports/monitor/report.html")
    # Where `mlgitops serve` (`make serve`) appends its prediction and feedback logs, for
    # `mlgitops monitor` and `mlgitops audit` to read; stdout keeps the server's own log. A
    # container has no params.yaml: MLGITOPS_PREDICTION_LOG (default stdout) says there.
    serve_prediction_log: Path = Path("reports/serve/predictions.jsonl")
    serve_feedback_log: Path = Path("reports/serve/feedback.jsonl")
    # The DVC metrics: a few headline figures per stage, what people compare across experiments
    # (`dvc metrics show`, `dvc exp show`); the records above hold the detail.
    headline_evaluate: Path = Path("metrics/evaluate.json")
    headline_gate: Path = Path("metrics/gate.json")
    headline_tune: Path = Path("metrics/tune.json")
    # `mlgitops retrain` keeps a refused challenger's gate report and metrics here, one folder
    # per branch it would have made (ignored by Git).
    retrain_evidence: Path = Path("reports/retrain")
    # The bearer token /feedback requires and the key that signs request ids, made (mode 0600)
    # by `mlgitops serve` when absent; a container mounts them from a Secret instead.
    serve_feedback_token: Path = Path("reports/serve/feedback-token")
    serve_request_id_key: Path = Path("reports/serve/request-id-key")
    # `mlgitops data ingest` lists the labels it set aside here (ignored by Git).
    ingest_set_aside: Path = Path("reports/ingest/set_aside.csv")


# A URL fsspec understands (s3://bucket/key, file:///abs/path, memory://x): kept as written,
# since a Path would fold its "//".
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DataFormat = Literal["csv", "parquet", "dataset"]


class DataConfig(FrozenModel):
    # One file (.csv, .csv.gz, .parquet) or a directory of Parquet files (hive partitions such
    # as `part=0003/x.parquet` allowed), local or an fsspec URL; `location` is the text to open.
    path: Path
    target: str = Field(min_length=1)
    positive_class: str | int | bool
    time_column: str | None = None
    # The entity id (a transaction id): never a feature; the service echoes and logs it and
    # monitoring joins labels on it. The one definition (monitoring.id_column is its old name).
    id_column: str | None = None
    column_types: dict[str, ColumnType] = Field(default_factory=dict)
    # Columns whose share of distinct values is above this are treated as identifiers and dropped.
    id_unique_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    _url: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_url(cls, value: Any, handler: Any) -> DataConfig:
        model = handler(value)
        raw = value.get("path") if isinstance(value, Mapping) else None
        if isinstance(raw, str) and _URL.match(raw):
            model._url = raw
        elif isinstance(value, DataConfig):
            model._url = value._url
        return model

    @property
    def is_url(self) -> bool:
        return self._url is not None

    @property
    def location(self) -> str:
        """data.path as fsspec opens it: the URL as written, else the local path."""
        return self._url if self._url is not None else str(self.path)

    @property
    def format(self) -> DataFormat:
        """csv or parquet for one file; dataset for a directory of Parquet files (a path ending
        in "/", without a suffix, or an existing local directory, even one named *.parquet)."""
        location = self.location
        name = location.rstrip("/").rsplit("/", 1)[-1].lower()
        local_dir = not self.is_url and self.path.is_dir()
        if location.endswith("/") or local_dir:
            return "dataset"
        if name.endswith((".parquet", ".pq")):
            return "parquet"
        if name.endswith((".csv", ".txt", ".csv.gz")):
            return "csv"
        if "." not in name:
            return "dataset"
        raise ConfigError(
            f"data.path: unsupported file type {name!r} (use a .csv, .csv.gz or .parquet file, "
            "or a directory of Parquet files)"
        )

    @property
    def provenance_path(self) -> Path:
        """Where `mlgitops data ingest` records each row's source, period and batch: beside
        data.path (for a directory: beside it, not in it, so it is never read as data), so the
        .dvc file that tracks the data tracks it too."""
        if self.is_url:
            raise ConfigError(
                f"data.path: {self.location} is a URL; ingest records provenance beside local data"
            )
        return self.path.with_name(f"{self.path.name.split('.')[0]}.provenance.csv")


class ValidateConfig(FrozenModel):
    min_rows: int = Field(ge=2, default=100)
    min_positive: int = Field(ge=1, default=10)
    max_missing_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6


class SplitConfig(FrozenModel):
    # Fractions of all rows; training gets the rest. By time: test is the latest period,
    # validation the one before it.
    test_size: Probability = 0.2
    validation_size: Probability = 0.2
    seed: int = 42
    numeric_bins: int = Field(ge=2, le=100, default=10)
    max_profile_categories: int = Field(ge=1, default=200)

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.test_size + self.validation_size >= 1.0:
            raise ValueError("test_size + validation_size must be below 1 (rows are left to train)")
        return self


class HistGradientBoostingParams(FrozenModel):
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    max_iter: int = Field(ge=1, default=200)
    max_leaf_nodes: int = Field(ge=2, default=31)
    min_samples_leaf: int = Field(ge=1, default=20)
    l2_regularization: float = Field(ge=0.0, default=0.0)
    max_bins: int = Field(ge=2, le=255, default=255)


class LogisticRegressionParams(FrozenModel):
    C: float = Field(gt=0.0, default=1.0)
    max_iter: int = Field(ge=1, default=1000)


class RandomForestParams(FrozenModel):
    n_estimators: int = Field(ge=1, default=200)
    max_depth: int | None = Field(ge=1, default=None)
    min_samples_leaf: int = Field(ge=1, default=5)


class TrainConfig(FrozenModel):
    model: ModelFamily
    seed: int = 42
    # Rarer categories than this share one "infrequent" code, so tiny groups don't overfit.
    min_category_frequency: int = Field(ge=1, default=20)
    max_categories: int = Field(ge=2, le=250, default=64)
    class_weight: Literal["balanced"] | None = None
    # OpenMP threads for fitting: part of what the model's bytes depend on (see train.fit).
    n_threads: int = Field(ge=1, le=64, default=2)
    hist_gradient_boosting: HistGradientBoostingParams = HistGradientBoostingParams()
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    random_forest: RandomForestParams = RandomForestParams()


class TuneConfig(FrozenModel):
    """Stage `tune`: a seeded random search with cross-validation on the training split only."""

    enabled: bool = True
    # "log_loss" (mean CV log-loss, lower is better: a proper scoring rule, so it rewards the
    # probabilities the cost threshold cuts, and it is less noisy than AUC with few positives)
    # or "roc_auc" (mean CV ROC AUC, higher is better).
    objective: Literal["log_loss", "roc_auc"] = "log_loss"
    # Trial 0 is always train.<model>'s own params, so the pick is never worse in CV than them.
    trials: int = Field(ge=1, default=24)
    # A wall-clock cap on starting new trials. Off by default: with it, how many trials run
    # depends on the machine, and so may the pick (the stage says so when it binds).
    max_seconds: float | None = Field(gt=0.0, default=None)
    cv_folds: int = Field(ge=2, le=20, default=3)
    # The search runs on at most this many training rows (a seeded sample); train uses all.
    max_rows: int = Field(ge=100, default=30000)
    seed: int = 42
    # Families searched; trial i uses models[i % len(models)] (trial 0: train.model).
    models: tuple[ModelFamily, ...] = ("hist_gradient_boosting",)


class ThresholdConfig(FrozenModel):
    """How the operating threshold is chosen, on the validation split (test only measures)."""

    policy: Literal["min_expected_cost", "target_recall", "fixed"]
    # Business costs, in currency per transaction: a false alarm costs a manual review,
    # a missed fraud costs the average loss.
    false_positive_cost: float = Field(gt=0.0, default=5.0)
    false_negative_cost: float = Field(gt=0.0, default=100.0)
    target_recall: Probability = 0.8
    fixed_threshold: Probability = 0.5
    currency: str = "EUR"


class GateConfig(FrozenModel):
    """Stage `gate`: the challenger (this tree's model) against the champion (the release at
    `base`), paired on this tree's test rows. Non-inferiority: "not worse by more than the
    margin", shown by a two-sided (1 - alpha) interval (see README, Retraining and the gate)."""

    # A Git revision whose committed release is the champion ("HEAD": the release this change
    # would replace). null: no comparison (the gate passes with reason "gate off").
    base: str | None = "HEAD"
    # The challenger may be this much worse and still pass: ROC AUC (absolute) and expected cost
    # per 1,000 transactions (in threshold.currency).
    auc_margin: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01
    cost_margin_per_1000: float = Field(ge=0.0, default=100.0)
    # Each interval is two-sided (1 - alpha); equal models FAIL with probability <= alpha.
    alpha: Annotated[float, Field(gt=0.0, le=0.5)] = 0.05
    # For the minimum detectable effect reported beside the verdict.
    power: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.8
    bootstrap_reps: int = Field(ge=100, le=100_000, default=2000)
    seed: int = 42
    # Guardrails: categorical features whose every value (segment) must not get worse in
    # expected cost per 1,000 by more than cost_margin_per_1000, where that is shown at
    # segment_alpha over all segments together (Bonferroni). A segment with fewer test rows or
    # positives than the minimums is skipped. Equal models FAIL at most alpha + segment_alpha.
    segments: list[str] = Field(default_factory=list)
    segment_alpha: Annotated[float, Field(gt=0.0, le=0.5)] = 0.01
    segment_min_rows: int = Field(ge=1, default=500)
    segment_min_positive: int = Field(ge=1, default=20)


class RetrainConfig(FrozenModel):
    """`mlgitops retrain`: where the retraining branch starts and how it is named."""

    # The branch whose release is the champion and that the pull request targets.
    base: str = Field(min_length=1, default="main")
    branch_prefix: str = Field(pattern=r"^[A-Za-z0-9._/-]*$", default="retrain/")


class PackageConfig(FrozenModel):
    bento_name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    image_repository: str = Field(min_length=1)
    # Hex digits of the bento content hash used as the bento (and image) version.
    version_length: int = Field(ge=8, le=64, default=12)
    # What the bento serves: the joblib pipeline (the service compiles its own fast path), or
    # the export stage's model.onnx, so that served and exported are one artifact, one hash.
    model_format: Literal["pipeline", "onnx"] = "pipeline"

    @field_validator("image_repository")
    @classmethod
    def _no_tag(cls, value: str) -> str:
        last = value.rsplit("/", 1)[-1]
        if ":" in last or "@" in value:
            raise ValueError(
                "must be a repository without tag or digest; the tag is the bento version"
            )
        return value


class ServingConfig(BaseSettings):
    """The server's settings. Field `name` is environment variable `MLGITOPS_NAME`; `from_env`
    reads them, `environment` writes them, nothing else spells the names."""

    # Only `from_env` reads the environment (see settings_customise_sources), so validating
    # params.yaml never picks up a variable of the shell it runs in.
    model_config = SettingsConfigDict(
        env_prefix="MLGITOPS_",
        # Kubernetes sets a variable from a missing annotation to "": unset, not a value.
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        protected_namespaces=(),
    )

    max_batch_size: int = Field(ge=1, default=1000)
    # "stdout", "off" or a file path. The defaults are a container's; `mlgitops serve` logs to
    # paths.serve_prediction_log and paths.serve_feedback_log unless params.yaml sets these.
    prediction_log: str = "stdout"
    feedback_log: str = "feedback.jsonl"
    prediction_log_queue: int = Field(ge=1, default=10000)
    workers: int = Field(ge=1, default=1)
    # With several workers, /readyz answers from whichever worker takes the probe: a request that
    # reaches a worker still loading waits this long for its model instead of failing at once.
    load_wait_seconds: float = Field(ge=0, le=600, default=60)
    # Rows whose served label a worker keeps to join /feedback to (labelled_outcome_total).
    feedback_join_rows: int = Field(ge=0, default=100_000)
    # ...and the bytes they may take (entity ids are kept with them, and ids are client data).
    feedback_join_bytes: int = Field(ge=0, default=64 * 2**20)
    # Each prediction is in the prediction log already; an access log line per request costs CPU.
    access_log: bool = False
    # OpenTelemetry spans for the API routes (with an exporter configured for BentoML).
    tracing: bool = False
    # Limits on what one client can make a worker hold (README, Serving: "Limits", says why each
    # default). `limits: false` turns all of them off: for measuring their cost only (the join
    # cache's `feedback_join_bytes` above stays: it is the cache's own accounting).
    limits: bool = True
    max_header_bytes: int = Field(ge=1024, le=1 << 20, default=16384)
    header_timeout_seconds: float = Field(gt=0, le=600, default=10)
    body_timeout_seconds: float = Field(gt=0, le=600, default=30)
    keepalive_timeout_seconds: int = Field(ge=1, le=600, default=5)
    max_connections: int = Field(ge=2, default=1024)
    max_in_flight: int = Field(ge=1, default=32)
    retry_after_seconds: int = Field(ge=1, le=3600, default=1)
    max_id_length: int = Field(ge=1, le=65536, default=128)
    max_string_length: int = Field(ge=1, le=65536, default=256)
    # /readyz answers 503 while the prediction or feedback log has not kept up for this long.
    log_stall_seconds: float = Field(gt=0, le=3600, default=10)
    # Facts of one deployment, set in the environment (by `mlgitops serve`, the pod spec), never in
    # params.yaml: the model to serve instead of the bento's pin, and the Git commit deployed.
    model_tag: str | None = None
    bento_tag: str | None = None
    git_commit: str | None = None
    # Credentials, as files (a mounted Secret; one value a line, every line accepted, so a new
    # one can be added before the old is removed; re-read when the file changes). /feedback
    # takes only the feedback token and is refused without one; /predict, /metadata, /schema
    # and /openapi.json take the predict token when one is set, else anyone.
    feedback_token_file: str | None = None
    predict_token_file: str | None = None
    # The key that signs request ids (the first line signs, every line verifies), shared by
    # every worker and replica; without it each worker signs with a key of its own and a label
    # is accepted only by the worker that served its prediction.
    request_id_key_file: str | None = None

    DEPLOYMENT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model_tag",
        "bento_tag",
        "git_commit",
        "feedback_token_file",
        "predict_token_file",
        "request_id_key_file",
    )

    @model_validator(mode="after")
    def _connections_above_requests(self) -> ServingConfig:
        # A new connection past the cap closes an idle one; with room for more connections than
        # requests in progress, one is always idle (a flood cannot lock out the probes).
        if self.max_connections <= self.max_in_flight:
            raise ValueError(
                f"max_connections ({self.max_connections}) must be larger than max_in_flight "
                f"({self.max_in_flight})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: Any, *_: Any, **__: Any
    ) -> tuple[Any, ...]:
        return (init_settings,)

    @classmethod
    def env_name(cls, field: str) -> str:
        return f"{cls.model_config['env_prefix']}{field.upper()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingConfig:
        """The settings from `environ` (default: the process environment), defaults for what is
        unset or empty. A variable with the prefix that is nearly a setting's name is a typo
        and an error; others are left alone (other tools share the prefix)."""
        environ = os.environ if environ is None else environ
        prefix = cls.model_config["env_prefix"]
        fields = {name.upper(): name for name in cls.model_fields}
        values: dict[str, str] = {}
        for key, value in environ.items():
            if not key.upper().startswith(prefix):
                continue
            suffix = key.upper().removeprefix(prefix)
            if suffix in fields:
                if value != "":  # Kubernetes sets a variable from a missing annotation to ""
                    values[fields[suffix]] = value
                continue
            near = closest(suffix.lower(), cls.model_fields, cutoff=0.8)
            if near is not None:
                raise ServingError(
                    f"environment variable {key}: no serving setting; did you mean "
                    f"{cls.env_name(near)}?"
                )
        try:
            return cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            if not first["loc"]:  # a rule between settings
                raise ServingError(f"serving settings: {first['msg']}") from None
            field = str(first["loc"][0])
            name = cls.env_name(field)
            raise ServingError(
                f"environment variable {name}={values.get(field)!r}: {first['msg']}"
            ) from None

    def environment(self, exclude_unset: bool = False) -> dict[str, str]:
        """The variables that `from_env` reads back as these settings (None fields omitted;
        with `exclude_unset`, also fields left at their default, for the environment to fill)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude_unset=exclude_unset).items():
            if value is not None:
                env[self.env_name(name)] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        return env


ExportArtifact = Literal["onnx", "quantized", "pruned", "c", "js"]


class QuantizeGate(FrozenModel):
    """The quantized model fails the stage unless it keeps decisions and ranking this close."""

    max_flipped_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.001
    max_abs_delta_roc_auc: Annotated[float, Field(ge=0.0, le=1.0)] = 0.001


class ExportConfig(FrozenModel):
    artifacts: tuple[ExportArtifact, ...] = ("onnx", "quantized", "pruned", "c", "js")
    # Float exports (ONNX, C, JS) must match predict_proba this closely, with no decision flipped.
    parity_tolerance: Annotated[float, Field(gt=0.0, le=1e-3)] = 1e-6
    quantize: QuantizeGate = QuantizeGate()
    # Pruning keeps the fewest trees whose test expected cost per 1,000 rows is at most this
    # much (currency) above the full model's.
    prune_epsilon_cost_per_1000: float = Field(ge=0.0, default=1.0)


class RulesConfig(FrozenModel):
    """The generated Prometheus rules (stage `rules`)."""

    group_prefix: str = Field(default="mlgitops", pattern=r"^[a-z][a-z0-9_-]*$")
    # kube-prometheus-stack loads only PrometheusRules carrying its `release` label.
    resource_labels: dict[str, str] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"}
    )
    resource_name: str = "mlgitops-model-alerts"
    namespace: str | None = None
    # Added to every alert; Alertmanager routes on them.
    alert_labels: dict[str, str] = Field(default_factory=lambda: {"team": "ml"})
    fast_window: Literal["1h"] = "1h"
    slow_window: Literal["1d"] = "1d"
    # Rule evaluations per hour, for the false-alarm budget of sliding windows.
    evaluations_per_hour: int = Field(ge=1, default=60)
    runbook_url: str = "https://example.invalid/runbooks/mlgitops-model"
    zero_traffic_for: str = "15m"


class MonitoringConfig(FrozenModel):
    """`mlgitops monitor` and the generated alert rules."""

    window: Literal["hour", "day", "rows"] = "day"
    window_rows: int = Field(ge=1, default=10_000)
    # Chance that a window with no change raises any drift alert (all features together).
    false_alarm_rate: Probability = 0.01
    correction: Literal["holm", "bh"] = "holm"
    min_rows: int = Field(ge=1, default=200)
    # Effect sizes below these are not worth an alert, however significant.
    min_psi: float = Field(ge=0.0, default=0.1)
    min_missing_increase: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    broken_missing_rate: Probability = 0.5
    min_unseen_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    min_unseen_count: int = Field(ge=1, default=10)
    # Confidence of the Wilson intervals and the one-sided performance checks.
    confidence: Probability = 0.99
    min_labels: int = Field(ge=1, default=30)
    # Labels of a window are expected once it is this old; fewer than the coverage is an alert.
    label_delay_hours: float = Field(gt=0.0, default=72.0)
    min_label_coverage: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    # Expected cost per 1,000 above the reference by this share (and the sampling error).
    min_cost_increase: float = Field(ge=0.0, default=0.2)
    slow_min_cost_increase: float = Field(ge=0.0, default=0.1)
    # Realized (and estimated) FPR/FNR above the released value by this share, at least.
    min_rate_increase: float = Field(ge=0.0, default=0.2)
    cusum_k: float = Field(ge=0.0, default=0.5)
    cusum_h: float = Field(gt=0.0, default=5.0)
    # Windows pooled for the slow-burn check that confirms a CUSUM alarm.
    slow_windows: int = Field(ge=1, default=7)
    segments: list[str] = Field(default_factory=list)
    max_segment_values: int = Field(ge=1, default=20)
    example_ids: int = Field(ge=0, default=5)
    # Deprecated: data.id_column is the definition; kept so older params.yaml stay readable.
    id_column: str | None = None
    score_bins: int = Field(ge=2, le=50, default=10)
    rules: RulesConfig = RulesConfig()


class ReportWords(FrozenModel):
    """How the report names things, so a bring-your-own table reads naturally."""

    model: str = Field(min_length=1, default="fraud detection model")
    positive: str = Field(min_length=1, default="fraudulent transaction")
    negative: str = Field(min_length=1, default="valid transaction")
    # None: the singular + "s".
    positive_plural: str | None = Field(min_length=1, default=None)
    negative_plural: str | None = Field(min_length=1, default=None)
    # What the model does to a negative it gets wrong ("... would be <flagged> and sent for
    # manual review").
    flagged: str = Field(min_length=1, default="flagged as fraudulent")


class ReportConfig(FrozenModel):
    """The stakeholder report. Costs and currency are `threshold:`'s, not repeated here."""

    daily_volume: float = Field(gt=0.0, default=10_000.0)  # transactions scored per day
    # The positive rate expected in production; None: the test split's (the latest period).
    production_positive_rate: Probability | None = None
    review_capacity_per_day: float = Field(gt=0.0, default=1_000.0)
    words: ReportWords = ReportWords()
    # Candidate operating points beyond the released one, the cost minimum and the capacity fit.
    target_recalls: tuple[Probability, ...] = (0.7, 0.8, 0.9)
    # Slices with fewer test rows than this are not ranked (their rates are mostly noise).
    min_slice_count: int = Field(ge=1, default=100)
    examples_per_kind: int = Field(ge=0, le=20, default=3)
    calibration_bins: int = Field(ge=2, le=50, default=10)


class RevertConfig(FrozenModel):
    """`mlgitops revert` and its Alertmanager receiver (`mlgitops revert serve`)."""

    # The branch the release was merged to (what Argo CD syncs); the revert branch starts here.
    base: str = Field(min_length=1, default="main")
    # The revert branch is <prefix><bento version being removed>: one branch per bad release.
    branch_prefix: str = Field(min_length=1, default="revert/")
    # A firing alert starts a revert when its labels include all of these and all of
    # monitoring.rules.alert_labels (the labels our rules put on every alert: our model's).
    selector: dict[str, str] = Field(default_factory=lambda: {"severity": "critical"})
    # Where the receiver writes the PR body of each branch it prepares.
    pr_body_dir: Path = Path("reports/revert")
    # Alertmanager's payloads are a few KiB; anything far larger is refused (413).
    max_request_bytes: int = Field(ge=1024, le=64 * 1024 * 1024, default=1024 * 1024)


ExperimentMode = Literal["ab", "shadow"]
ExperimentMetric = Literal["cost_per_1000", "recall", "alert_rate"]


class IngestConfig(FrozenModel):
    """`mlgitops data ingest --predictions --labels`: labels are untrusted input."""

    # Labels set aside (an id not in the prediction log, an id labelled both 0 and 1, a row
    # without a 0/1 label or an id) may be at most this share of the label rows read; the rest
    # is ingested. Beyond it the whole batch is refused: a broken export, not a few bad rows.
    max_set_aside_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    # The service's /feedback log holds what its clients posted: ingest it only when allowed.
    allow_feedback_labels: bool = False


class ExperimentConfig(FrozenModel):
    """An A/B test or shadow run of a challenger against the release, declared in Git
    (`experiment:`; null or `enabled: false` is off). See README, A/B and shadow experiments."""

    enabled: bool = False
    # A Git revision whose committed release is the challenger (a branch, tag or commit).
    challenger: str | None = None
    # ab: the challenger answers its share of the keys; shadow: both score every row, the
    # champion answers, the challenger's score is only logged.
    mode: ExperimentMode = "ab"
    # The challenger's share of assignment keys (ab mode); the expected ratio of the SRM check.
    share: Probability = 0.1
    # A column of the request records (the data's schema): one key value always lands in one arm.
    # None: data.id_column.
    assignment_key: str | None = None
    # Hashed with the key: a new salt reshuffles who lands where (a fresh experiment).
    salt: str = Field(default="mlgitops", min_length=1)
    primary_metric: ExperimentMetric = "cost_per_1000"
    # The smallest difference worth detecting, in the metric's units (currency per 1,000
    # transactions, recall or alert rate as fractions): the mixing scale of the sequential test
    # and what "more labels needed" is sized for.
    min_effect: float = Field(gt=0.0, default=100.0)
    # Always-valid: the chance of a wrong winner stays below alpha however often one looks.
    alpha: Annotated[float, Field(gt=0.0, le=0.5)] = 0.05
    power: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.8
    # A prediction counts for outcome metrics once event_time + label_delay <= as_of.
    label_delay_hours: float = Field(ge=0.0, default=72.0)
    # Guardrail: the challenger's alert rate may be at most this much higher (absolute fraction
    # of transactions; review capacity). None: no guardrail.
    max_alert_rate_increase: Annotated[float, Field(gt=0.0, lt=1.0)] | None = 0.005
    # Below this many matured, labelled rows (and frauds) per arm nothing is tested yet: plug-in
    # variances of a few rows are too noisy for the normal approximation.
    min_rows_per_arm: int = Field(ge=2, default=200)
    min_frauds_per_arm: int = Field(ge=1, default=10)
    # A sample ratio mismatch: the arm counts' chi-square p-value below this (Fabijan et al.).
    srm_p_value: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.001

    @model_validator(mode="after")
    def _challenger_when_on(self) -> ExperimentConfig:
        if self.enabled and not (self.challenger and self.challenger.strip()):
            raise ValueError("challenger: a Git revision is required when the experiment is on")
        if self.primary_metric != "cost_per_1000" and self.min_effect >= 1.0:
            raise ValueError(f"min_effect: {self.primary_metric} is a fraction; use one below 1")
        return self


def experiment_key_error(key: str, columns: list[str]) -> str | None:
    """The one-line error for an assignment key that is not a column of the data, else None."""
    if key in columns:
        return None
    return f"experiment.assignment_key: {key!r} is not a column of the data ({', '.join(columns)})"


class AuditConfig(FrozenModel):
    """`mlgitops audit`: the stratified sample of logged predictions that humans label."""

    sample_size: int = Field(ge=2, default=500)
    # Cut points of the score strata; the release threshold is always a cut as well, so each
    # stratum holds only flagged or only let-through transactions.
    score_bands: tuple[Probability, ...] = (0.005, 0.01, 0.02, 0.1, 0.2, 0.5)
    # The bands just below and just above the threshold get this many times their share.
    near_threshold_weight: float = Field(ge=1.0, default=3.0)
    # Share of the sample drawn in proportion to the strata's sizes (a uniform sample), so
    # every logged prediction has an inclusion probability above zero.
    uniform_floor_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    # Share kept for transactions the model let through (score below the threshold), where
    # the missed frauds are.
    let_through_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25
    seed: int = 42
    # Tasks carry no score or model label (annotators anchor on a shown prediction).
    blind: bool = True
    # Disagreements between model and annotators listed in the report.
    examples: int = Field(ge=0, le=100, default=10)
    confidence: Probability = 0.95

    @model_validator(mode="after")
    def _shares_fit(self) -> AuditConfig:
        if self.uniform_floor_share + self.let_through_share > 1.0:
            raise ValueError("uniform_floor_share + let_through_share must be at most 1")
        if list(self.score_bands) != sorted(set(self.score_bands)):
            raise ValueError("score_bands must be increasing")
        return self


ENGINE_ENV = "MLGITOPS_ENGINE"
SCHEDULER_ENV = "MLGITOPS_DASK_SCHEDULER"
EngineKind = Literal["local", "cluster", "scheduler"]


class EngineConfig(FrozenModel):
    """Where Dask work runs. Results never depend on it, so neither does any output: a
    scheduler's address comes only from MLGITOPS_DASK_SCHEDULER, and MLGITOPS_ENGINE
    (`local`, `local:T`, `cluster`, `cluster:N`, `scheduler`) overrides kind and size."""

    # local: in this process (threads, or Dask's synchronous scheduler with 1 thread); cluster:
    # a LocalCluster of `workers` processes, 1 thread each; scheduler: an existing cluster.
    kind: EngineKind = "local"
    threads: int = Field(ge=1, le=256, default=1)
    workers: int = Field(ge=1, le=256, default=2)
    # Memory per cluster worker before Dask spills and pauses ("2GiB"); None: Dask's share.
    worker_memory: str | None = None
    # How often Dask reruns a task whose worker died before the stage stops.
    allowed_failures: int = Field(ge=0, le=20, default=2)

    @field_validator("worker_memory")
    @classmethod
    def _bytes(cls, value: str | None) -> str | None:
        if value is not None:
            from dask.utils import parse_bytes

            try:
                parse_bytes(value)
            except (ValueError, TypeError):
                raise ValueError(f"{value!r} is not a size such as 2GiB") from None
        return value

    def with_environment(self, environ: Mapping[str, str] | None = None) -> EngineConfig:
        """This engine as MLGITOPS_ENGINE overrides it (kind, and threads or workers)."""
        environ = os.environ if environ is None else environ
        raw = environ.get(ENGINE_ENV, "").strip()
        if not raw:
            return self
        kind, _, size = raw.partition(":")
        if kind not in typing.get_args(EngineKind) or (size and kind == "scheduler"):
            raise ConfigError(
                f"environment variable {ENGINE_ENV}={raw!r}: use local, local:THREADS, cluster, "
                "cluster:WORKERS or scheduler"
            )
        update: dict[str, object] = {"kind": kind}
        if size:
            if not size.isdigit() or not 1 <= int(size) <= 256:
                raise ConfigError(
                    f"environment variable {ENGINE_ENV}={raw!r}: {size!r} is not a count 1-256"
                )
            update["threads" if kind == "local" else "workers"] = int(size)
        return self.model_copy(update=update)


def scheduler_address(environ: Mapping[str, str] | None = None) -> str:
    """The scheduler of engine kind `scheduler`: only ever from the environment."""
    environ = os.environ if environ is None else environ
    address = environ.get(SCHEDULER_ENV, "").strip()
    if not address:
        raise ConfigError(
            f"engine.kind is scheduler but {SCHEDULER_ENV} is unset "
            "(set it to the scheduler's address, e.g. tcp://dask-scheduler:8786)"
        )
    return address


class Params(FrozenModel):
    paths: PathsConfig
    data: DataConfig
    validate_: ValidateConfig = Field(alias="validate", default=ValidateConfig())
    split: SplitConfig = SplitConfig()
    tune: TuneConfig = TuneConfig()
    train: TrainConfig
    threshold: ThresholdConfig
    gate: GateConfig = GateConfig()
    retrain: RetrainConfig = RetrainConfig()
    package: PackageConfig
    serving: ServingConfig = Field(default_factory=ServingConfig)
    export: ExportConfig = ExportConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    report: ReportConfig = ReportConfig()
    revert: RevertConfig = RevertConfig()
    # null (the default) or `enabled: false`: no experiment.
    experiment: ExperimentConfig | None = None
    audit: AuditConfig = AuditConfig()
    ingest: IngestConfig = IngestConfig()
    engine: EngineConfig = EngineConfig()

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("serving", mode="before")
    @classmethod
    def _no_deployment_facts(cls, value: object) -> object:
        if isinstance(value, dict):
            for key in ServingConfig.DEPLOYMENT_FIELDS:
                if key in value:
                    name = ServingConfig.env_name(key)
                    raise ValueError(f"{key}: set by the environment ({name}), not in params.yaml")
        return value

    @property
    def id_column(self) -> str | None:
        """The entity id column: data.id_column, else the deprecated monitoring.id_column."""
        return self.data.id_column or self.monitoring.id_column

    @model_validator(mode="after")
    def _id_column_defined_once(self) -> Params:
        data, old = self.data.id_column, self.monitoring.id_column
        if data and old and data != old:
            raise ValueError(f"monitoring.id_column {old!r} differs from data.id_column {data!r}")
        if data and self.data.column_types.get(data) in ("numeric", "categorical"):
            raise ValueError(f"data.column_types.{data}: the id column cannot be a feature")
        if data and data in (self.data.target, self.data.time_column):
            raise ValueError(f"data.id_column: {data!r} is the target or the time column")
        return self

    @property
    def active_experiment(self) -> ExperimentConfig | None:
        """The experiment when one is on, else None."""
        experiment = self.experiment
        return experiment if experiment is not None and experiment.enabled else None

    @property
    def experiment_key(self) -> str | None:
        """The assignment key column: experiment.assignment_key, else the id column."""
        experiment = self.experiment
        if experiment is None:
            return None
        return experiment.assignment_key or self.id_column

    @model_validator(mode="after")
    def _experiment_key_known(self) -> Params:
        experiment = self.active_experiment
        if experiment is not None and self.experiment_key is None:
            raise ValueError("experiment.assignment_key: none given and data.id_column is unset")
        key = self.experiment_key
        if experiment is not None and key in (self.data.target,):
            raise ValueError(f"experiment.assignment_key: {key!r} is the target column")
        return self

    @model_validator(mode="after")
    def _target_is_not_overridden_away(self) -> Params:
        if self.data.column_types.get(self.data.target) is not None:
            raise ValueError(
                f"data.column_types.{self.data.target}: "
                "the target column cannot have a type override"
            )
        return self


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, int]:
    """The model a field holds, and how many location parts (dict keys, list indexes) lie
    between the field and the model's own keys."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, 0
    if origin is Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model, skip = _model_of(arg)
            if model is not None:
                return model, skip
    if origin in (dict, list, tuple) and typing.get_args(annotation):
        model, skip = _model_of(typing.get_args(annotation)[-1])
        return model, skip + 1
    return None, 0


def _keys_at(location: tuple[int | str, ...]) -> list[str] | None:
    """The keys params.yaml allows where `location`'s last part is: the model's field names
    (as written in params.yaml: aliases), or None if the location is not in a model."""
    model: type[BaseModel] = Params
    parts = list(location[:-1])
    while parts:
        part = parts.pop(0)
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return None
        inner, skip = _model_of(field.annotation)
        if inner is None:
            return None
        model, parts = inner, parts[skip:]
    return [f.alias or name for name, f in model.model_fields.items()]


def _format_validation_error(source: Path, error: ValidationError) -> str:
    errors = error.errors()
    # A misspelt key also leaves a required one missing: the typo is the error to show.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    location = error_location(first["loc"]).replace("validate_", "validate")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        keys = _keys_at(first["loc"]) or []
        near = closest(str(first["loc"][-1]), keys)
        message = "unknown key" + (
            f"; did you mean {near!r}?" if near else f" (known: {', '.join(keys)})"
        )
    return f"{source}: {location}: {message}{more}"


def parse_params(raw: object, source: Path = DEFAULT_PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None


def load_params(path: Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate params.yaml; relative paths in it stay relative to the working dir."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run from the project root)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_params(raw, Path(path))
