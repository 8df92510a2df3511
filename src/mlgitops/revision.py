"""What a commit releases: its release record and the paths params.yaml names, from Git objects.

Deploy and image build both ask this, so they get one answer. The release record parses
strictly: it names what runs. Of params.yaml only the keys a caller needs are read, so an
older commit whose params predate today's schema can still be deployed and built.

(Beside `release.py`, not in it: `release.py` ships in the bento, and the bento's version is
the hash of what it ships.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlgitops.config import DEFAULT_PARAMS_FILE, PathsConfig
from mlgitops.errors import ArtifactError, ConfigError, validation_line
from mlgitops.git import read_blob
from mlgitops.release import ReleaseRecord

# Where each `paths:` entry of params.yaml lies at a revision whose params do not name it: the
# one table for every reader of old revisions. PathsConfig's default where it has one; the
# entries params.yaml must name, where every revision put them; and the two records that moved
# under reports/ (metrics/ now holds the headline figures): a revision that does not name them
# predates the move, so they lie where it wrote them.
DEFAULT_PATHS: dict[str, str] = {
    **{
        name: field.default.as_posix()
        for name, field in PathsConfig.model_fields.items()
        if isinstance(field.default, Path)
    },
    "release": "release.json",
    "k8s_release_patch": "k8s/base/release.yaml",
    "model": "artifacts/model/model.joblib",
    "model_card": "artifacts/model/model_card.json",
    "profile": "artifacts/reference_profile.json",
    "schema_file": "artifacts/schema.json",
    "test": "artifacts/split/test.parquet",
    "validation_report": "reports/validation.json",
    "metrics": "metrics/evaluate.json",
    "gate_metrics": "metrics/gate.json",
}


def params_at(repo: Path, commit: str) -> dict[str, Any]:
    """params.yaml at `commit` as a mapping (empty when the commit has none)."""
    source = f"{commit[:12]}:{DEFAULT_PARAMS_FILE}"
    text = read_blob(repo, commit, DEFAULT_PARAMS_FILE.as_posix())
    if text is None:
        return {}
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"{source}: not valid YAML: {first}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    return raw


def setting(params: dict[str, Any], commit: str, section: str, key: str) -> str | None:
    """params[section][key] as text, None when absent; ConfigError when it is something else."""
    source = f"{commit[:12]}:{DEFAULT_PARAMS_FILE}"
    block = params.get(section, {})
    if not isinstance(block, dict):
        raise ConfigError(f"{source}: {section}: expected a mapping")
    value = block.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: {section}.{key}: expected a non-empty string")
    return value


def path_at(params: dict[str, Any], commit: str, key: str) -> str:
    """`paths.<key>` of the params at `commit`, else where it always lay (DEFAULT_PATHS)."""
    return setting(params, commit, "paths", key) or DEFAULT_PATHS[key]


def release_path(params: dict[str, Any], commit: str) -> str:
    return path_at(params, commit, "release")


def find_release_at(repo: Path, commit: str, path: str) -> ReleaseRecord | None:
    """The release record at `commit`, None when the commit has no file at `path`."""
    text = read_blob(repo, commit, path)
    if text is None:
        return None
    source = f"{commit[:12]}:{path}: not a valid release record"
    try:
        return ReleaseRecord.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{source}: not valid JSON: {error}") from None
    except ValidationError as error:
        raise ArtifactError(f"{source}: {validation_line(error)}") from None


def release_at(repo: Path, commit: str, params: dict[str, Any] | None = None) -> ReleaseRecord:
    """The release record of `commit`, where its params.yaml says; ArtifactError without one."""
    params = params_at(repo, commit) if params is None else params
    path = release_path(params, commit)
    record = find_release_at(repo, commit, path)
    if record is None:
        raise ArtifactError(
            f"{commit[:12]} has no release record {path} (run `dvc repro` and commit it)"
        )
    return record


def dvc_out_md5(repo: Path, commit: str, path: str) -> str | None:
    """The md5 dvc.lock at `commit` records for output `path`, None when it records none."""
    text = read_blob(repo, commit, "dvc.lock")
    if text is None:
        return None
    return out_md5_in_lock(text, path, f"{commit[:12]}:dvc.lock")


def out_md5_in_lock(text: str, path: str, source: str) -> str | None:
    """The md5 the dvc.lock `text` records for output `path`, None when it records none."""
    try:
        lock = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise ArtifactError(f"{source}: not valid YAML") from None
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path and isinstance(out.get("md5"), str):
                return str(out["md5"])
    return None


def dvc_cache_dir(repo: Path) -> Path:
    """The local DVC cache: `cache.dir` of .dvc/config.local or .dvc/config, else .dvc/cache."""
    import configparser

    for name in ("config.local", "config"):
        parser = configparser.ConfigParser()
        try:
            parser.read(repo / ".dvc" / name, encoding="utf-8")
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            return (repo / ".dvc" / parser.get("cache", "dir")).resolve()
    return repo / ".dvc" / "cache"


def dvc_file_at(repo: Path, commit: str, path: str) -> bytes:
    """The bytes of DVC-tracked `path` as of `commit`: found by dvc.lock's md5 in the local
    cache, else fetched through `dvc.api` (the remote). Checked against that md5 either way."""
    md5 = dvc_out_md5(repo, commit, path)
    if md5 is None:
        raise ArtifactError(f"{commit[:12]}:dvc.lock records no output {path}")
    return _dvc_bytes(repo, commit, path, md5, f"{commit[:12]}:{path} (md5 {md5})")


def dvc_cache_file(repo: Path, md5: str) -> Path:
    """Where the local DVC cache keeps the object of `md5` (present or not)."""
    return dvc_cache_dir(repo) / "files" / "md5" / md5[:2] / md5[2:]


def _dvc_bytes(repo: Path, commit: str, path: str, md5: str | None, named: str) -> bytes:
    """`path` at `commit` from the local cache by `md5`, else through `dvc.api` (the remote);
    checked against `md5` when there is one. `named` is how an error names it."""
    import hashlib

    cached = dvc_cache_file(repo, md5) if md5 else None
    if cached is not None and cached.is_file():
        data = cached.read_bytes()
    else:
        try:
            import dvc.api

            data = dvc.api.read(path, repo=str(repo), rev=commit, mode="rb")
        except Exception as error:  # dvc raises many types; one line names what is missing
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ArtifactError(
                f"{named} is neither in the DVC cache nor fetchable from the remote "
                f"({type(error).__name__}: {first}); run `dvc fetch` for it"
            ) from None
    if md5 and hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
        raise ArtifactError(f"{commit[:12]}:{path}: the cached copy does not match md5 {md5}")
    return data


def dvc_added_file_at(repo: Path, commit: str, path: str) -> bytes:
    """The bytes of `path` as of `commit` when a `.dvc` file (`dvc add`) tracks it or a folder
    above it (data.dvc tracks data/): by the md5 the `.dvc` file records, from the local cache,
    else through `dvc.api` (the remote); checked against that md5 either way."""
    from pathlib import PurePosixPath

    target = PurePosixPath(path)
    for owner in (target, *target.parents):
        if str(owner) in {".", ""}:
            break
        text = read_blob(repo, commit, f"{owner}.dvc")
        if text is not None:
            break
    else:
        text = None
    if text is None:
        raise ArtifactError(f"{commit[:12]}: no .dvc file tracks {path}")
    try:
        outs = (yaml.safe_load(text) or {}).get("outs") or []
        md5 = str(outs[0]["md5"])
    except (yaml.YAMLError, AttributeError, IndexError, KeyError, TypeError):
        raise ArtifactError(f"{commit[:12]}:{owner}.dvc: not a .dvc file with an md5") from None
    found: str | None = md5
    if md5.endswith(".dir"):
        manifest = dvc_cache_file(repo, md5)
        entries = json.loads(manifest.read_text()) if manifest.is_file() else []
        relpath = str(target.relative_to(owner))
        found = next((e.get("md5") for e in entries if e.get("relpath") == relpath), None)
    return _dvc_bytes(repo, commit, path, found, f"{commit[:12]}:{path}")
