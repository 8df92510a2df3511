"""dvc.yaml must list, for each stage of ours, every project module the stage imports.

A module missing from `deps` leaves `dvc status` clean over stale artifacts after an edit.
Imports are followed transitively, including imports inside functions (lazy imports run too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.support.project import REPO_ROOT

SRC = REPO_ROOT / "src"
# The stages written with this check; the older ones are listed in docs as known drift.
CHECKED_STAGES = ("score_reference", "rules")


def _module_file(module: str) -> Path | None:
    base = SRC / Path(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "mlgitops"}


def transitive_files(module: str) -> set[Path]:
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # Importing a.b.c runs a/__init__ and a/b/__init__ as well.
        for depth in range(1, len(parts) + 1):
            path = _module_file(".".join(parts[:depth]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(_imports(path))
    return seen


@pytest.mark.parametrize("stage", CHECKED_STAGES)
def test_stage_deps_cover_transitive_imports(stage):
    pipeline = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    deps = {str(d) for d in pipeline[stage]["deps"]}
    needed = {str(p.relative_to(REPO_ROOT)) for p in transitive_files(f"mlgitops.stages.{stage}")}
    missing = sorted(p for p in needed if p not in deps)
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps: {missing}"
