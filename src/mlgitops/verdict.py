"""Whether a model is released: the gate's verdict on it, in this tree and at a commit.

Stage `gate` writes its verdict whatever it is (`paths.gate_metrics`). Only a PASS for this
tree's own model releases it: the stages that write release outputs (`rules`: the alert rules
under k8s/; `package`: the bento archive, release.json and the k8s pin; `report`: the report of
the release) write them then, and on any other verdict leave them as they were and say so in
one line. So every `dvc exp run` finishes, whatever the verdict, and a model the gate did not
pass never reaches release.json, k8s/ or the bento archive.

A commit carries its verdict in Git, beside the release it names. `mlgitops deploy` and
`mlgitops report pr` refuse a revision whose committed verdict is not PASS, or is about another
model than the one its release pins (someone committed an experiment that lost: the release
did not move, but the change is no release either). Revisions older than the gate record carry
none and are judged by their release alone, as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlgitops.config import Params
from mlgitops.errors import ArtifactError, ReleaseNotPassedError
from mlgitops.git import read_blob
from mlgitops.io import file_sha256
from mlgitops.records import GateReport, load_gate_report
from mlgitops.release import ReleaseRecord
from mlgitops.revision import find_release_at, params_at, path_at, release_path

PASS = "PASS"


def judged_model_hash(release: ReleaseRecord) -> str:
    """The hash of the model the gate judges for `release`: the fitted pipeline's, also when
    the pod serves its ONNX export (then the release's model_hash is the graph's)."""
    return release.source_model_hash or release.model_hash


@dataclass(frozen=True)
class Verdict:
    """A gate record's verdict and the model it judged (`challenger_model_hash`)."""

    verdict: str
    model_hash: str
    reason: str
    path: str

    @property
    def passed(self) -> bool:
        return self.verdict == PASS


def refusal(verdict: Verdict, release: ReleaseRecord | None) -> str | None:
    """Why `release` is not one its gate passed, None when it is."""
    pinned = judged_model_hash(release) if release is not None else None
    if not verdict.passed:
        which = (
            "the model its release pins"
            if verdict.model_hash == pinned
            else f"model {verdict.model_hash[:19]}, which its release does not pin"
        )
        return f"its gate verdict is {verdict.verdict} ({verdict.path}) for {which}"
    if pinned is not None and verdict.model_hash != pinned:
        return (
            f"{verdict.path} passed model {verdict.model_hash[:19]}, but its release pins "
            f"{pinned[:19]} (commit the gate record with its release)"
        )
    return None


# ------------------------------------------------------------------------------- this tree


def tree_verdict(params: Params) -> GateReport:
    """This tree's gate record, checked to be about this tree's model (a stale one is an
    error: the stages after the gate must not act on a verdict about another model)."""
    report = load_gate_report(params.paths.gate_metrics)
    model = "sha256:" + file_sha256(params.paths.model)
    if report.challenger_model_hash != model:
        raise ArtifactError(
            f"{params.paths.gate_metrics}: judged model {report.challenger_model_hash[:19]}, "
            f"not {params.paths.model} ({model[:19]}); run `dvc repro`"
        )
    return report


def require_kept(params: Params, report: GateReport, outputs: list[Path]) -> None:
    """A stage leaving its release outputs as they were needs them to exist: without a release
    to keep (none was ever made here), the verdict's GateError, and nothing is written."""
    from mlgitops.errors import GateFailedError, GateInconclusiveError

    missing = [str(path) for path in outputs if not Path(path).exists()]
    if missing:
        error = GateFailedError if report.verdict == "FAIL" else GateInconclusiveError
        raise error(
            f"gate verdict {report.verdict} (see {params.paths.gate_report}): {report.reason}; "
            f"no release to keep ({', '.join(missing)} missing), so nothing is written"
        )


def not_released(params: Params, report: GateReport, still: str) -> str:
    """The one line of a stage that leaves its release outputs as they were."""
    return (
        f"gate verdict {report.verdict} (see {params.paths.gate_report}): release not changed; "
        f"{still}"
    )


# ------------------------------------------------------------------------------ at a commit


def committed_verdict(repo: Path, commit: str, params: dict | None = None) -> Verdict | None:
    """The gate record committed at `commit`, None when it has none (older than the gate)."""
    params = params_at(repo, commit) if params is None else params
    path = path_at(params, commit, "gate_metrics")
    text = read_blob(repo, commit, path)
    if text is None:
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{commit[:12]}:{path}: not valid JSON: {error}") from None
    verdict = raw.get("verdict") if isinstance(raw, dict) else None
    judged = raw.get("challenger_model_hash") if isinstance(raw, dict) else None
    if not isinstance(verdict, str) or not isinstance(judged, str):
        raise ArtifactError(
            f"{commit[:12]}:{path}: not a gate record (no verdict and challenger_model_hash)"
        )
    reason = raw.get("reason")
    return Verdict(verdict, judged, reason if isinstance(reason, str) else "", path)


def require_released(repo: Path, commit: str, rev: str) -> None:
    """ReleaseNotPassedError unless the release at `commit` is one its committed gate passed
    (a commit without a gate record passes: it predates the gate)."""
    params = params_at(repo, commit)
    verdict = committed_verdict(repo, commit, params)
    if verdict is None:
        return
    release = find_release_at(repo, commit, release_path(params, commit))
    problem = refusal(verdict, release)
    if problem is None:
        return
    still = f"; its release record still names {release.bento_tag}" if release else ""
    raise ReleaseNotPassedError(f"{rev} ({commit[:12]}) is not a release: {problem}{still}")
