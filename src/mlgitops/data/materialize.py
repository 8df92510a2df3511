"""Bring the dataset recorded in data.dvc into the workspace, with no network if need be.

`dvc pull` is tried first. When the remote is unreachable or empty (a fresh machine), the embedded
generator recreates the data and DVC itself checks it against the hash in data.dvc: a mismatch is
an error, never a silent new dataset.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlgitops.data.generate import GeneratorConfig, write_dataset
from mlgitops.errors import DataError


@dataclass(frozen=True)
class MaterializeResult:
    source: Literal["pulled", "generated", "present"]
    detail: str


def _dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dvc", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def dvc_file_is_clean(dvc_file: Path, cwd: Path) -> tuple[bool, str]:
    """Whether the workspace matches the hashes recorded in `dvc_file`, according to DVC."""
    result = _dvc("status", "--json", str(dvc_file), cwd=cwd)
    if result.returncode != 0:
        raise DataError(f"`dvc status {dvc_file}` failed: {result.stderr.strip()[-500:]}")
    report = json.loads(result.stdout or "{}")
    return (not report), json.dumps(report)


def materialize(
    dvc_file: Path, data_path: Path, cwd: Path, generator: GeneratorConfig | None = None
) -> MaterializeResult:
    dvc_file = Path(dvc_file)
    if not (cwd / dvc_file).is_file():
        raise DataError(f"{dvc_file}: not found; nothing records which dataset to materialize")
    if (cwd / data_path).exists():
        clean, report = dvc_file_is_clean(dvc_file, cwd)
        if clean:
            return MaterializeResult("present", f"{data_path} already matches {dvc_file}")

    pulled = _dvc("pull", str(dvc_file), cwd=cwd)
    if pulled.returncode == 0 and dvc_file_is_clean(dvc_file, cwd)[0]:
        return MaterializeResult("pulled", f"pulled {data_path} from the DVC remote")

    reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
    write_dataset(cwd / data_path, generator or GeneratorConfig())
    clean, report = dvc_file_is_clean(dvc_file, cwd)
    if not clean:
        raise DataError(
            f"regenerated {data_path} does not match the hash recorded in {dvc_file} "
            f"(dvc status: {report}); the generator or its inputs changed"
        )
    # Put the regenerated files into the local cache so `dvc push` and checkouts work.
    committed = _dvc("commit", "--force", str(dvc_file), cwd=cwd)
    if committed.returncode != 0:
        raise DataError(f"`dvc commit {dvc_file}` failed: {committed.stderr.strip()[-500:]}")
    return MaterializeResult(
        "generated", f"dvc pull failed ({reason}); regenerated {data_path}, hash matches {dvc_file}"
    )
