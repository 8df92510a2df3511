"""The one exception hierarchy. The CLI maps each class to an exit code and a one-line message;
`validation_line` turns pydantic's report on bad input into that line's detail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def error_location(loc: Sequence[int | str]) -> str:
    """Where pydantic found a problem, as a dotted key path (`train.params.max_depth`, list
    items by index); "(top level)" for a rule about the whole object."""
    return ".".join(str(part) for part in loc) or "(top level)"


def validation_line(error: ValidationError) -> str:
    """The first problem pydantic found, as `location: message`: callers prefix the file or
    source, so a bad input gives one line naming the key, never pydantic's multi-line report."""
    first = error.errors()[0]
    return f"{error_location(first['loc'])}: {first['msg']}"


class MlgitopsError(Exception):
    """Base of every error mlgitops raises on purpose; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(MlgitopsError):
    """params.yaml (or another config file) is missing, unparsable or invalid."""

    exit_code = 2


class DataError(MlgitopsError):
    """An input table cannot be read or does not fit the declared schema."""

    exit_code = 3


class DataQualityError(DataError):
    """The data was read but fails a quality check (too few rows, bad label, ...)."""

    exit_code = 4


class ArtifactError(MlgitopsError):
    """A pipeline artifact (model, profile, release record, bento) is missing or corrupt."""

    exit_code = 5


class PackagingError(ArtifactError):
    """Saving the model to the BentoML store or building the bento failed."""

    exit_code = 6


class ServingError(MlgitopsError):
    """The prediction service could not start or load its model."""

    exit_code = 7


class ImageBuildError(MlgitopsError):
    """Building or pushing the container image failed."""

    exit_code = 8


class RegistryError(ImageBuildError):
    """The container registry's HTTP API could not answer: unreachable, access denied, no such
    tag, a broken credentials file or an answer that is no manifest. `image push` exits 8 with
    it; a deploy never lets it through: it falls back to the tag or raises ImageDigestError.
    `kind` says which: unreachable, denied, unknown, invalid or config."""

    exit_code = 8

    def __init__(self, message: str, kind: str = "unreachable", status: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class DeployError(MlgitopsError):
    """Rendering, applying or recording a deploy failed."""

    exit_code = 9


class RolloutFailedError(DeployError):
    """The rollout did not complete; the deploy command rolled back (or tried to)."""

    exit_code = 10


class DeployLockedError(DeployError):
    """Another deploy to the same environment holds the lock (and was seen renewing it for as
    long as the deploy waited, `--lock-wait`)."""

    exit_code = 11


class DeployLeaseLostError(DeployError):
    """A deploy lost its lease while it ran (not renewed in time: a stall, the API unreachable;
    or taken over by another deploy): it stopped before its next write and recorded nothing."""

    exit_code = 31


class ImageDigestError(DeployError):
    """A deploy could not pin the release's image to a digest and will not go on: the tag is not
    in the registry, the registry credentials file is broken, or the registry cannot be asked
    and `--require-digest` was given."""

    exit_code = 32


class DeployInterruptedError(DeployError):
    """SIGTERM or SIGINT ended a deploy: its lease was released and the attempt recorded as
    interrupted. The exit code is 128 + the signal number, as a shell reports a process the
    signal ended: 143 for SIGTERM, 130 for SIGINT."""

    exit_code = 130

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class GitError(MlgitopsError):
    """A Git revision or object could not be resolved."""

    exit_code = 12


class ExportError(ArtifactError):
    """An exported model fails its parity or quantization gate, or cannot be exported."""

    exit_code = 13


class MonitoringInputError(DataError):
    """`mlgitops monitor` got no usable input: no readable log, no prediction, a bad label file."""

    exit_code = 14


class MonitoringAlertError(MlgitopsError):
    """`mlgitops monitor` ran and at least one alert fired (the report says which)."""

    exit_code = 15


class GateError(MlgitopsError):
    """The champion/challenger gate could not compare the two models (missing or incompatible
    champion, unreadable artifact at the base revision)."""

    exit_code = 16


class GateFailedError(GateError):
    """The gate's verdict is FAIL: the challenger is shown worse than the champion by more than
    the margin. It is not released: the release stages keep the champion's outputs (or, with
    none to keep, `package` exits with it); `retrain` and `report pr` exit with it."""

    exit_code = 17


class GateInconclusiveError(GateError):
    """The gate's verdict is INCONCLUSIVE: the test set cannot show the challenger is not worse.
    Not released, as for FAIL."""

    exit_code = 18


class IngestError(DataError):
    """A batch `mlgitops data ingest` refuses whole (the dataset is left as it was)."""

    exit_code = 19


class RetrainError(MlgitopsError):
    """`mlgitops retrain` could not propose a model (no branch is left, main is untouched)."""

    exit_code = 20


class RevertError(MlgitopsError):
    """`mlgitops revert` cannot prepare the revert branch: no earlier release, the branch exists,
    the release commit does not revert cleanly, or the result is not the previous release."""

    exit_code = 25


class ReleaseNotPassedError(MlgitopsError):
    """A revision's committed gate verdict is not PASS, or its gate passed another model than
    the one its release record pins (an experiment that lost, committed): `mlgitops deploy`
    refuses to deploy it and `mlgitops report pr` to judge it (src/mlgitops/verdict.py)."""

    exit_code = 28


class AttestationError(MlgitopsError):
    """A release's signed attestation does not hold: a signature, a hash against the files at
    the revision, the verdict or the image digest disagrees (`mlgitops verify`, deploy)."""

    exit_code = 35


class AttestationMissingError(AttestationError):
    """A release has no attestation, or it is signed by a key the trust root does not list."""

    exit_code = 36


class TrustRootError(MlgitopsError):
    """The trust root (trust/keys.yaml) or a signing key is unusable: unparsable, not an EC
    P-256 key, a duplicate id, a key that is not (or no longer) valid for signing."""

    exit_code = 37


class PolicyChangedError(GateError):
    """`mlgitops report pr`: the head changes the gate's policy (gate.*, threshold.*, the split
    that defines the test rows; mlgitops.policy). The verdict is computed under the base's
    policy anyway; a FAIL or INCONCLUSIVE exits by that verdict (17, 18), a PASS with this code:
    the change needs a policy owner's review (docs/ci/CODEOWNERS), not an automatic merge."""

    exit_code = 33


class JudgeError(MlgitopsError):
    """`mlgitops report pr --judge-from-base` could not run the trusted judge: the base's
    worktree, its venv, the judge process or the sandboxed scorer of the head's model failed,
    or what they returned is not a verdict."""

    exit_code = 34


class ExperimentError(MlgitopsError):
    """`mlgitops ab status` got unusable input: no experiment declared, no readable log, no
    prediction carrying an arm, a bad label file."""

    exit_code = 40


class ExperimentVerdictError(MlgitopsError):
    """`mlgitops ab status` ran and its verdict is not CHALLENGER_BETTER (exit 0); the report and
    the JSON result are written. One subclass, one exit code per verdict (41-45); this base is
    never raised itself."""

    exit_code = 41


class ExperimentNoDifferenceYetError(ExperimentVerdictError):
    """NO_DIFFERENCE_YET: enough data to test, no difference shown yet; keep the experiment on."""

    exit_code = 41


class ExperimentInsufficientDataError(ExperimentVerdictError):
    """INSUFFICIENT_DATA: too few matured labels per arm to test at all."""

    exit_code = 42


class ExperimentChampionBetterError(ExperimentVerdictError):
    """CHAMPION_BETTER: the challenger is shown worse on the primary metric; stop it."""

    exit_code = 43


class ExperimentGuardrailBreachedError(ExperimentVerdictError):
    """GUARDRAIL_BREACHED: the challenger raises the alert rate by more than allowed."""

    exit_code = 44


class ExperimentSampleRatioMismatchError(ExperimentVerdictError):
    """SRM: the arm counts do not fit the declared share; no outcome can be trusted."""

    exit_code = 45


class AuditInputError(DataError):
    """`mlgitops audit` got input it cannot use: a sample directory, a label file or a Label
    Studio export that is unreadable, inconsistent or from another audit."""

    exit_code = 27


class EngineError(MlgitopsError):
    """The Dask engine is unavailable: its scheduler is unreachable or its cluster did not start."""

    exit_code = 46


class PartitionError(MlgitopsError):
    """Work on one partition failed on the engine (it raised, or its worker died more often than
    engine.allowed_failures allows); the message names the partition and the cause."""

    exit_code = 47
