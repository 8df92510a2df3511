"""Does a commit reproduce its own release? Its dvc.lock against its own tree, from Git objects.

A commit whose dvc.lock records other code, params or pipeline than the commit holds (say
`dvc.yaml` or a stage's module changed without `dvc repro`, or a merge brought serving code the
pinned bento was not built from) is one on which `dvc repro` re-runs stages, and may build
another bento than its release record pins. A rollback to such a commit would not restore the
release it names, so the plan passes over it. This is what `dvc status` would say about the
stages' definitions, params and Git-tracked dependencies; outputs kept by DVC are not read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlgitops.errors import GitError
from mlgitops.git import read_blobs

DVC_YAML = "dvc.yaml"
DVC_LOCK = "dvc.lock"
PARAMS = "params.yaml"
# How many reasons are kept: one tells a reviewer enough, a few tell the pattern.
MAX_REASONS = 3

_INTERPOLATION = re.compile(r"\$\{\s*([\w.-]+)\s*\}")
# PyYAML reads YAML 1.1, where `1e-06` (as DVC writes a float into dvc.lock) is a string.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _UnreadableError(Exception):
    pass


def _value(value: Any) -> Any:
    """A param value comparable across YAML 1.1 and 1.2 readings: numbers as floats."""
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return value


def _lookup(params: Mapping[str, Any], dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(dotted)
        value = value[key]
    return value


def _resolve(text: str, params: Mapping[str, Any]) -> str:
    try:
        return _INTERPOLATION.sub(lambda m: str(_lookup(params, m.group(1))), text)
    except KeyError as missing:
        message = f"dvc.yaml names ${{{missing.args[0]}}}, not in params.yaml"
        raise _UnreadableError(message) from None


def _paths(entries: Any, params: Mapping[str, Any]) -> set[str]:
    """Paths of a dvc.yaml deps/outs/metrics/plots list (strings or {path: options})."""
    found = set()
    for entry in entries or []:
        path = next(iter(entry)) if isinstance(entry, dict) else entry
        found.add(_resolve(str(path), params))
    return found


def _param_keys(entries: Any) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for entry in entries or []:
        if isinstance(entry, dict):
            for file, names in entry.items():
                keys.setdefault(str(file), set()).update(str(n) for n in names or [])
        else:
            keys.setdefault(PARAMS, set()).add(str(entry))
    return keys


def _load(blob: bytes, name: str) -> Any:
    try:
        return yaml.safe_load(blob)
    except yaml.YAMLError:
        raise _UnreadableError(f"{name} is not valid YAML") from None


def _stage_reasons(
    name: str, stage: dict[str, Any], locked: dict[str, Any], params: Mapping[str, Any]
) -> list[str]:
    reasons = []
    if _resolve(str(stage.get("cmd", "")), params) != locked.get("cmd"):
        reasons.append(f"stage {name}: its command changed since dvc.lock")
    deps = {d["path"] for d in locked.get("deps") or []}
    if _paths(stage.get("deps"), params) != deps:
        reasons.append(f"stage {name}: dvc.yaml lists other dependencies than dvc.lock")
    declared = set()
    for kind in ("outs", "metrics", "plots"):
        declared |= _paths(stage.get(kind), params)
    if declared != {o["path"] for o in locked.get("outs") or []}:
        reasons.append(f"stage {name}: dvc.yaml lists other outputs than dvc.lock")
    locked_params = locked.get("params") or {}
    for file, keys in _param_keys(stage.get("params")).items():
        values = locked_params.get(file) or {}
        if set(values) != keys:
            reasons.append(f"stage {name}: dvc.yaml tracks other params than dvc.lock")
            continue
        if file != PARAMS:
            continue  # another params file: not read here
        for key in sorted(keys):
            try:
                current = _lookup(params, key)
            except KeyError:
                current = None
            if _value(current) != _value(values[key]):
                reasons.append(f"stage {name}: param {key} changed since dvc.lock")
    return reasons


def lock_mismatches(repo: Path, commit: str) -> list[str] | None:
    """Why dvc.lock at `commit` does not match the commit (at most MAX_REASONS, each one line);
    [] when it matches; None when the commit has no pipeline and lock to compare."""
    try:
        files = read_blobs(repo, commit, [DVC_YAML, DVC_LOCK, PARAMS])
    except GitError:
        return None
    if DVC_YAML not in files or DVC_LOCK not in files:
        return None
    try:
        pipeline = _load(files[DVC_YAML], DVC_YAML) or {}
        lock = _load(files[DVC_LOCK], DVC_LOCK) or {}
        params = (_load(files[PARAMS], PARAMS) or {}) if PARAMS in files else {}
        stages = pipeline.get("stages") or {}
        locked = lock.get("stages") or {}
        reasons = []
        if set(stages) != set(locked):
            reasons.append("dvc.yaml has other stages than dvc.lock")
        for name in sorted(set(stages) & set(locked)):
            reasons += _stage_reasons(name, stages[name], locked[name], params)
        reasons += _dependency_reasons(repo, commit, locked)
    except _UnreadableError as error:
        return [str(error)]
    except (AttributeError, KeyError, TypeError):
        return ["dvc.yaml or dvc.lock is not laid out as DVC 3 writes it"]
    return reasons[:MAX_REASONS]


def _dependency_reasons(repo: Path, commit: str, locked: dict[str, Any]) -> list[str]:
    """Files whose content is not what dvc.lock recorded: Git-tracked dependencies and outputs
    by their md5, a dependency on another stage's output by the md5 that stage's entry gives it."""
    produced = {
        out["path"]: out.get("md5") for stage in locked.values() for out in stage.get("outs") or []
    }
    recorded: dict[str, list[tuple[str, str | None]]] = {}
    for name, stage in sorted(locked.items()):
        for entry in [*(stage.get("deps") or []), *(stage.get("outs") or [])]:
            recorded.setdefault(entry["path"], []).append((name, entry.get("md5")))
    tracked = read_blobs(repo, commit, sorted(recorded))
    reasons = []
    for path, users in sorted(recorded.items()):
        if path in tracked:
            actual: str | None = hashlib.md5(tracked[path], usedforsecurity=False).hexdigest()
            what = f"{path} is not the file dvc.lock records"
        elif path in produced:
            actual = produced[path]
            what = f"{path} is not the output dvc.lock records"
        else:
            continue  # kept by DVC only (data, a directory): not in Git to compare
        for name, md5 in users:
            if md5 != actual:
                reasons.append(f"stage {name}: {what}")
    return reasons
