"""Where the image builder keeps its caches, and how cache entries are keyed and guarded.

Everything lives outside the repository: `$MLGITOPS_CACHE`, else `~/.cache/mlgitops`. A cache
entry is named by the hash of everything that determines its content (its recipe), so a changed
recipe gets a new entry instead of a stale hit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "MLGITOPS_CACHE"


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mlgitops"


def recipe_key(recipe: object, length: int = 16) -> str:
    """A short, stable hash of a JSON-serialisable recipe (key order does not matter)."""
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two builds (CLI and tests) don't fill one entry twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
