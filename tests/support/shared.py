"""Expensive test inputs built once per test session and shared by every pytest-xdist worker.

A built entry is a directory named by the hash of its recipe (what was built, from which inputs),
made under an exclusive file lock by the first worker that asks: the others wait for it, then
copy from it. The cache lives in the session's base temp directory (the parent of the workers'
own), so every `pytest` run starts empty and pytest's own retention removes it. Outside a
pytest session (benchmarks, scripts), `entry` returns None and callers build directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

_root: Path | None = None


def configure(root: Path | None) -> None:
    """Where this session's shared entries live (None turns sharing off)."""
    global _root
    _root = root


def session_root(basetemp: Path) -> Path:
    """The directory every worker of this session sees: an xdist worker's basetemp is
    `<session basetemp>/popen-gwN`, a lone pytest's is the session's own."""
    return (basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp) / "shared"


def digest_files(root: Path, names: tuple[str, ...]) -> str:
    """sha256 over the named files and directory trees under `root` (paths and bytes), skipping
    bytecode and build metadata: what a copy of the project would contain."""
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            parts = file.relative_to(root).parts
            if not file.is_file() or any(
                p == "__pycache__" or p.endswith(".egg-info") for p in parts
            ):
                continue
            digest.update("/".join(parts).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def entry(kind: str, recipe: dict, build: Callable[[Path], None]) -> Path | None:
    """The directory `build` filled for `recipe`, built at most once per session.

    `build` gets an empty staging directory; it is renamed into place only when `build` returns,
    so a build that failed or was killed is never reused (the next caller builds again)."""
    if _root is None:
        return None
    key = hashlib.sha256(json.dumps([kind, recipe], sort_keys=True).encode()).hexdigest()[:16]
    target = _root / f"{kind}-{key}"
    _root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(_root / f"{kind}-{key}.lock")):
        if not target.is_dir():
            staging = _root / f".{kind}-{key}.staging"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            build(staging)
            staging.rename(target)
    return target
