"""What a commit releases, read from Git objects and the DVC cache: the facts an attestation
binds. `attest` and `verify` read them the same way, so they hash the same bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlgitops.errors import ArtifactError, ReleaseNotPassedError
from mlgitops.git import read_blobs, run
from mlgitops.policy import policy_of
from mlgitops.release import ReleaseRecord
from mlgitops.revision import (
    dvc_cache_file,
    dvc_file_at,
    dvc_out_md5,
    find_release_at,
    params_at,
    path_at,
    release_path,
)
from mlgitops.serving.layout import MODEL_CARD_FILE, MODEL_FILES, PROFILE_FILE, SCHEMA_FILE
from mlgitops.verdict import committed_verdict, refusal

DATA_DVC = "data.dvc"
PARAMS_FILE = "params.yaml"
DVC_LOCK = "dvc.lock"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RevisionFile:
    """The bytes of a file at a commit and where they came from (Git or the DVC cache)."""

    path: str
    data: bytes
    origin: str  # "git", or the DVC cache file it was read from

    @property
    def where(self) -> str:
        return self.path if self.origin == "git" else f"{self.path} ({self.origin})"


def file_at(repo: Path, commit: str, path: str, *, strict: bool) -> RevisionFile:
    """`path` at `commit`: the Git blob, else the DVC output dvc.lock records for it, from the
    local cache (or the remote). `strict`: cached bytes must match dvc.lock's md5 (attest signs
    nothing else); verify reads them as they are and compares them with the statement."""
    found = read_blobs(repo, commit, [path])
    if path in found:
        return RevisionFile(path, found[path], "git")
    md5 = dvc_out_md5(repo, commit, path)
    if md5 is None:
        raise ArtifactError(f"{commit[:12]}:{path}: neither in Git nor a dvc.lock output")
    cached = dvc_cache_file(repo, md5)
    if cached.is_file() and not strict:
        return RevisionFile(path, cached.read_bytes(), f"DVC cache {cached}")
    return RevisionFile(path, dvc_file_at(repo, commit, path), f"DVC cache md5 {md5}")


@dataclass(frozen=True)
class ReleaseFacts:
    commit: str
    commit_time: str
    release: ReleaseRecord
    release_file: RevisionFile
    model: RevisionFile  # the file the pod serves
    shipped: dict[str, RevisionFile]  # name in the bento's model store -> file
    data_dvc_md5: str
    params_file: RevisionFile
    dvc_lock: RevisionFile
    gate_file: RevisionFile
    verdict: str
    policy_sha256: str
    policy_source: str


def _data_dvc_md5(repo: Path, commit: str) -> str:
    found = read_blobs(repo, commit, [DATA_DVC])
    if DATA_DVC not in found:
        raise ArtifactError(f"{commit[:12]}:{DATA_DVC}: not found (the data is not versioned)")
    try:
        raw = yaml.safe_load(found[DATA_DVC]) or {}
        md5 = raw["outs"][0]["md5"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        raise ArtifactError(f"{commit[:12]}:{DATA_DVC}: outs[0].md5 not found") from None
    if not isinstance(md5, str):
        raise ArtifactError(f"{commit[:12]}:{DATA_DVC}: outs[0].md5 is not text")
    return md5


def policy_digest(params: dict[str, Any], gate_record: bytes, commit: str) -> tuple[str, str]:
    """(sha256, source) of the policy the verdict was judged under: the gate record's own
    `policy_sha256` when the judge wrote one (a judge reading the base's policy), else the
    hash of the commit's own gate policy (mlgitops.policy: the one definition the judge uses)."""
    try:
        raw = json.loads(gate_record)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raw = None
    recorded = raw.get("policy_sha256") if isinstance(raw, dict) else None
    if isinstance(recorded, str) and recorded:
        return recorded.removeprefix("sha256:"), "gate record policy_sha256"
    policy = policy_of(params, commit)
    return policy.sha256.removeprefix("sha256:"), "params.yaml gate policy (mlgitops.policy)"


def served_path(params: dict[str, Any], commit: str, release: ReleaseRecord) -> str:
    if release.model_format == "pipeline":
        return path_at(params, commit, "model")
    export_dir = (params.get("paths") or {}).get("export_dir", "artifacts/export")
    return f"{export_dir}/{MODEL_FILES['onnx']}"


def release_facts(repo: Path, commit: str, *, strict: bool) -> ReleaseFacts:
    """The facts of the release at `commit`. A commit whose committed gate verdict did not pass
    its release is refused (ReleaseNotPassedError): there is nothing to attest or verify."""
    params = params_at(repo, commit)
    rel_path = release_path(params, commit)
    release = find_release_at(repo, commit, rel_path)
    if release is None:
        raise ArtifactError(f"{commit[:12]} has no release record {rel_path}")
    verdict = committed_verdict(repo, commit, params)
    if verdict is None:
        raise ReleaseNotPassedError(
            f"{commit[:12]} has no gate record ({path_at(params, commit, 'gate_metrics')}): "
            "only a release the gate passed is attested"
        )
    problem = refusal(verdict, release)
    if problem is not None:
        raise ReleaseNotPassedError(f"{commit[:12]} is not a release: {problem}")
    model_path = served_path(params, commit, release)
    model = file_at(repo, commit, model_path, strict=strict)
    shipped = {
        MODEL_FILES[release.model_format]: model,
        MODEL_CARD_FILE: file_at(
            repo, commit, path_at(params, commit, "model_card"), strict=strict
        ),
        PROFILE_FILE: file_at(repo, commit, path_at(params, commit, "profile"), strict=strict),
        SCHEMA_FILE: file_at(repo, commit, path_at(params, commit, "schema_file"), strict=strict),
    }
    gate_file = file_at(repo, commit, verdict.path, strict=strict)
    policy_sha, policy_source = policy_digest(params, gate_file.data, commit)
    return ReleaseFacts(
        commit=commit,
        commit_time=run(repo, "log", "-1", "--format=%cI", commit).strip(),
        release=release,
        release_file=file_at(repo, commit, rel_path, strict=strict),
        model=model,
        shipped=shipped,
        data_dvc_md5=_data_dvc_md5(repo, commit),
        params_file=file_at(repo, commit, PARAMS_FILE, strict=strict),
        dvc_lock=file_at(repo, commit, DVC_LOCK, strict=strict),
        gate_file=gate_file,
        verdict=verdict.verdict,
        policy_sha256=policy_sha,
        policy_source=policy_source,
    )
