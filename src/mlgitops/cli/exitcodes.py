"""Exit codes in words. The CLI exits with the `exit_code` of the error class it caught
(mlgitops.errors); MEANING says what each code means, in the words README's CLI section uses,
and every command's --help ends with the codes that command exits with (`epilog`).
tests/mlgitops/cli/test_exit_codes.py holds the README, docs/*.md and each help to the classes."""

from __future__ import annotations

from mlgitops import errors

ErrorClass = type[errors.MlgitopsError]

MEANING: dict[ErrorClass, str] = {
    errors.MlgitopsError: "other error",
    errors.ConfigError: "config or usage",
    errors.DataError: "data",
    errors.DataQualityError: "data quality",
    errors.ArtifactError: "artifact",
    errors.PackagingError: "packaging",
    errors.ServingError: "serving",
    errors.ImageBuildError: "image",
    errors.DeployError: "deploy",
    errors.RolloutFailedError: "rollout failed and rolled back",
    errors.DeployLockedError: "deploy locked",
    errors.DeployLeaseLostError: "deploy lease lost (stopped before its next write)",
    errors.ImageDigestError: "image digest unavailable (deploy)",
    errors.DeployInterruptedError: "deploy interrupted (SIGINT; 143 for SIGTERM)",
    errors.GitError: "git",
    errors.ExportError: "export gate",
    errors.MonitoringInputError: "unusable monitoring input",
    errors.MonitoringAlertError: "monitoring alert fired",
    errors.GateError: "gate error",
    errors.GateFailedError: "gate verdict FAIL",
    errors.GateInconclusiveError: "gate verdict INCONCLUSIVE",
    errors.IngestError: "ingest batch refused",
    errors.RetrainError: "retrain refused",
    errors.RevertError: "revert refused",
    errors.AuditInputError: "unusable audit input",
    errors.ReleaseNotPassedError: "not a release (its committed gate verdict did not pass it)",
    errors.AttestationError: "release not verified (its attestation fails a check)",
    errors.AttestationMissingError: "no attestation or signed by a key outside the trust root",
    errors.TrustRootError: "trust root or signing key unusable",
    errors.PolicyChangedError: "gate policy changed by the change under review (verdict PASS)",
    errors.JudgeError: "trusted judge could not run",
    errors.ExperimentError: "unusable experiment input",
    errors.ExperimentNoDifferenceYetError: "NO_DIFFERENCE_YET",
    errors.ExperimentInsufficientDataError: "INSUFFICIENT_DATA",
    errors.ExperimentChampionBetterError: "CHAMPION_BETTER",
    errors.ExperimentGuardrailBreachedError: "GUARDRAIL_BREACHED",
    errors.ExperimentSampleRatioMismatchError: "SRM",
    errors.EngineError: "Dask engine unavailable",
    errors.PartitionError: "a partition failed on the engine",
}

# Bases that are never raised themselves; their subclasses carry the codes.
NEVER_RAISED: tuple[ErrorClass, ...] = (errors.ExperimentVerdictError,)


def meaning(cls: ErrorClass) -> str:
    """The words for `cls`'s code: its own entry, else that of the nearest base with the same
    code (a subclass that only narrows the message, such as a Kubernetes API error)."""
    for base in cls.__mro__:
        if base in MEANING and getattr(base, "exit_code", None) == cls.exit_code:
            return MEANING[base]
    raise KeyError(f"{cls.__name__} (exit {cls.exit_code}) has no entry in MEANING")


def phrase(cls: ErrorClass) -> str:
    return f"{cls.exit_code} {meaning(cls)}"


def epilog(*classes: ErrorClass, ok: str = "success") -> str:
    """The last paragraph of a command's help: its exit codes, then config/usage for all."""
    codes = sorted(set(classes) - {errors.ConfigError}, key=lambda c: (c.exit_code, c.__name__))
    listed = ", ".join(["0 " + ok, *map(phrase, codes), phrase(errors.ConfigError)])
    return f"Exit codes: {listed}; every code: mlgitops --help."


def every_code() -> str:
    """All codes the CLI exits with, for `mlgitops --help` (README's CLI section lists them)."""
    raised = [cls for cls in MEANING if cls not in NEVER_RAISED]
    listed = ", ".join(phrase(c) for c in sorted(raised, key=lambda c: c.exit_code))
    return f"Exit codes: 0 success, {listed}."
