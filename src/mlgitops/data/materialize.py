"""Bring the dataset recorded in data.dvc into the workspace, with no network if need be.

`dvc pull` is tried first. When the remote is unreachable or empty (a fresh machine), the embedded
generator recreates the data and DVC itself checks it against the hash in data.dvc: a mismatch is
an error, never a silent new dataset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from mlgitops.data.generate import GeneratorConfig, write_dataset
from mlgitops.dvcrun import run_dvc
from mlgitops.errors import DataError
from mlgitops.io import file_md5


@dataclass(frozen=True)
class MaterializeResult:
    source: Literal["pulled", "generated", "present"]
    detail: str


def _changed_outs(dvc_file: Path, cwd: Path) -> dict[str, str]:
    result = run_dvc("status", "--json", str(dvc_file), cwd=cwd)
    if result.returncode != 0:
        raise DataError(f"`dvc status {dvc_file}` failed: {result.stderr.strip()[-500:]}")
    changed: dict[str, str] = {}
    for entries in json.loads(result.stdout or "{}").values():
        for entry in entries:
            changed.update(entry.get("changed outs", {}) if isinstance(entry, dict) else {})
    return changed


def dvc_file_is_clean(dvc_file: Path, cwd: Path) -> tuple[bool, str]:
    """Whether the workspace matches `dvc_file` and is in the cache, according to DVC."""
    changed = _changed_outs(dvc_file, cwd)
    return not changed, json.dumps(changed)


def dvc_md5(path: Path) -> str:
    """The md5 DVC records for a file, or for a directory (`<md5 of its listing>.dir`)."""
    if path.is_file():
        return file_md5(path)
    entries = [
        {"md5": file_md5(item), "relpath": item.relative_to(path).as_posix()}
        for item in sorted(path.rglob("*"))
        if item.is_file()
    ]
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(listing, usedforsecurity=False).hexdigest() + ".dir"


def recorded_outs(dvc_file: Path) -> list[tuple[Path, str]]:
    """(path, md5) of each output recorded in a .dvc file, paths relative to its folder."""
    try:
        document = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
        return [
            (dvc_file.parent / out["path"], str(out["md5"])) for out in document.get("outs", [])
        ]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{dvc_file}: not a readable .dvc file: {error}") from None


def _mismatches(dvc_file: Path) -> list[str]:
    return [
        f"{path}: recorded {recorded}, found {actual}"
        for path, recorded in recorded_outs(dvc_file)
        if (actual := dvc_md5(path) if path.exists() else "nothing") != recorded
    ]


def pull_failure(stderr: str) -> str:
    """Why `dvc pull` brought nothing, in words. A remote without the data (a new machine, or
    nothing pushed yet) is the expected case the generator is for; anything else is quoted, its
    continuation lines (the targets DVC lists) joined to the line they continue."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if any("do not exist neither locally nor on remote" in line for line in lines):
        return "the data is not on the DVC remote yet (as on a new machine)"
    start = next((i for i, line in enumerate(lines) if line.startswith("ERROR")), None)
    if start is None:
        return f"dvc pull failed ({lines[-1] if lines else 'no output'})"
    quoted = [lines[start].removeprefix("ERROR: ")]
    for line in lines[start + 1 :]:
        if line.startswith(("ERROR", "WARNING", "<http", "Is your cache")):
            break
        quoted.append(line)
    return f"dvc pull failed ({' '.join(quoted)})"


def materialize(
    dvc_file: Path, data_path: Path, cwd: Path, generator: GeneratorConfig | None = None
) -> MaterializeResult:
    dvc_file = Path(dvc_file)
    if not (cwd / dvc_file).is_file():
        raise DataError(f"{dvc_file}: not found; nothing records which dataset to materialize")
    if (cwd / data_path).exists():
        if not _mismatches(cwd / dvc_file):
            return MaterializeResult("present", f"{data_path} already matches {dvc_file}")
        # Never overwrite someone's edited data with a download or a regenerated copy.
        raise DataError(
            f"{data_path} differs from {dvc_file}: record it with `dvc add` or restore it "
            f"with `dvc checkout {dvc_file}`"
        )

    pulled = run_dvc("pull", str(dvc_file), cwd=cwd)
    if pulled.returncode == 0 and dvc_file_is_clean(dvc_file, cwd)[0]:
        return MaterializeResult("pulled", f"pulled {data_path} from the DVC remote")

    why = pull_failure(pulled.stderr)
    write_dataset(cwd / data_path, generator or GeneratorConfig())
    mismatches = _mismatches(cwd / dvc_file)
    if mismatches:
        raise DataError(
            f"regenerated {data_path} does not match the hash recorded in {dvc_file} "
            f"({'; '.join(mismatches)}); the generator or its inputs changed"
        )
    # Put the regenerated files into the local cache so `dvc push` and checkouts work.
    committed = run_dvc("commit", "--force", str(dvc_file), cwd=cwd)
    if committed.returncode != 0 or not dvc_file_is_clean(dvc_file, cwd)[0]:
        raise DataError(f"`dvc commit {dvc_file}` failed: {committed.stderr.strip()[-500:]}")
    return MaterializeResult(
        "generated",
        f"{why}; regenerated {data_path} with the embedded generator, hash matches {dvc_file}",
    )
