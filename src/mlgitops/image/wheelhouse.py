"""The wheelhouse: every Python package of the bento as a wheel, made outside the build.

Inside the build, HTTPS to PyPI fails certificate checks (and the build runs with no network at
all), so pip installs with `--no-index --find-links`. The wheels are made with the interpreter
running mlgitops, which must be CPython 3.11 on Linux x86_64 like bookworm's python3.11 in the
base: same ABI tag, and a glibc no newer than bookworm's (2.36). `pip` itself is added as a wheel
so the build can run pip from it (`python /wheelhouse/pip-X.whl/pip install ...`) without
installing pip, or python3.11-venv/ensurepip, into the image. The cache entry is keyed by the
requirements, any local wheels the bento ships, the interpreter and the pip version.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops.errors import ImageBuildError
from mlgitops.image.cache import file_lock, recipe_key
from mlgitops.image.proc import run

TARGET = {"implementation": "cpython", "version": "3.11", "system": "Linux", "machine": "x86_64"}
_PROBE = (
    "import json, platform, sys, pip; print(json.dumps({"
    "'implementation': sys.implementation.name, "
    "'version': '%d.%d' % sys.version_info[:2], "
    "'system': platform.system(), 'machine': platform.machine(), "
    "'libc': platform.libc_ver()[1], 'pip': pip.__version__}))"
)


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    key: str
    built: bool
    seconds: float

    @property
    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))


def probe_interpreter(python: str) -> dict[str, Any]:
    out = run([python, "-c", _PROBE], what="probe the wheel-building interpreter", timeout=60)
    return dict(json.loads(out.stdout))


def check_interpreter(info: dict[str, Any]) -> None:
    mismatched = {k: info.get(k) for k, v in TARGET.items() if info.get(k) != v}
    if mismatched:
        raise ImageBuildError(
            f"wheels must be built by {TARGET} to install in the base image; this interpreter "
            f"has {mismatched}"
        )


def local_wheels(python_env_dir: Path) -> dict[str, str]:
    """Wheels a bento ships itself (env/python/wheels/), by name and sha256."""
    return {
        wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest()
        for wheel in sorted((python_env_dir / "wheels").glob("*.whl"))
    }


def wheelhouse_key(requirements: str, wheels: dict[str, str], interpreter: dict[str, Any]) -> str:
    return recipe_key(
        {"requirements": requirements, "local_wheels": wheels, "interpreter": interpreter}
    )


def ensure_wheelhouse(
    python_env_dir: Path, cache_dir: Path, *, python: str = sys.executable, hashed: bool = False
) -> Wheelhouse:
    """Wheels for `python_env_dir/requirements.txt` (a bento's env/python), built once per key.

    `hashed`: the requirements are a lock with hashes that pins pip itself; pip checks every file
    it downloads (wheel or source) against them, and adds no unhashed pip of its own.
    """
    requirements_file = python_env_dir / "requirements.txt"
    if not requirements_file.is_file():
        raise ImageBuildError(f"{requirements_file}: missing; the bento has no locked requirements")
    start = time.monotonic()
    interpreter = probe_interpreter(python)
    check_interpreter(interpreter)
    requirements = requirements_file.read_text(encoding="utf-8")
    if hashed and not re.search(r"^pip==", requirements, re.MULTILINE):
        raise ImageBuildError(f"{requirements_file}: pins no pip, which the build runs from")
    key = wheelhouse_key(requirements, local_wheels(python_env_dir), interpreter)
    target = cache_dir / "wheelhouse" / key
    with file_lock(cache_dir / "locks" / f"wheelhouse-{key}.lock"):
        if (target / "COMPLETE").is_file():
            return Wheelhouse(target, key, built=False, seconds=time.monotonic() - start)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{key}-", dir=target.parent) as tmp:
            staging = Path(tmp) / "wheels"
            cmd = [
                python, "-m", "pip", "wheel",
                "--disable-pip-version-check", "--prefer-binary",
                "--wheel-dir", str(staging),
                "-r", "requirements.txt",
            ]  # fmt: skip
            # A hashed lock pins pip too; otherwise the interpreter's pip runs the build.
            cmd += ["--require-hashes"] if hashed else [f"pip=={interpreter['pip']}"]
            # cwd = env/python so relative wheel paths in requirements.txt resolve as in the build.
            run(cmd, what="build the wheelhouse", cwd=python_env_dir, timeout=1800,
                log=cache_dir / "logs" / f"wheelhouse-{key}.log")  # fmt: skip
            (staging / "requirements.txt").write_text(requirements, encoding="utf-8")
            (staging / "COMPLETE").write_text(json.dumps(interpreter, sort_keys=True) + "\n")
            if target.exists():  # a half-made entry from a killed run
                shutil.rmtree(target)
            staging.rename(target)
    return Wheelhouse(target, key, built=True, seconds=time.monotonic() - start)
