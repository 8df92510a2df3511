"""What each `dvc.yaml` stage must declare as code dependencies, and which it is missing.

A stage runs `mlgitops stage NAME`, i.e. `mlgitops.stages.NAME.run`; whatever project module that
imports, transitively, can change its outputs. The package stage also ships the service's code
in the bento (hashed into the bento version), so the service's closure counts for it too.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mlgitops.packaging.bento import service_module
from mlgitops.packaging.imports import module_closure

# Roots beyond the stage's own module: what the stage reads as data rather than imports.
EXTRA_ROOTS = {"package": [service_module()]}
EXTRA_FILES = {"package": ["py.typed"]}


def required_code_deps(stage: str, src: Path) -> set[str]:
    """Repository-relative paths of every project source file `stage` depends on."""
    root = src / "mlgitops"
    files: set[Path] = set()
    for module in [f"mlgitops.stages.{stage}", *EXTRA_ROOTS.get(stage, [])]:
        files.update(module_closure(module, root))
    files.update(root / name for name in EXTRA_FILES.get(stage, []))
    return {path.relative_to(src.parent).as_posix() for path in files}


def declared_deps(dvc_yaml: dict, stage: str) -> list[str]:
    return [str(dep) for dep in dvc_yaml["stages"][stage].get("deps", [])]


def missing_code_deps(dvc_yaml: dict, src: Path) -> dict[str, list[str]]:
    """{stage: [required files no declared dep covers]} for stages that miss any."""
    missing: dict[str, list[str]] = {}
    for stage in dvc_yaml["stages"]:
        declared = declared_deps(dvc_yaml, stage)

        def covered(path: str, declared: list[str] = declared) -> bool:
            return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in declared)

        lacking = sorted(p for p in required_code_deps(stage, src) if not covered(p))
        if lacking:
            missing[stage] = lacking
    return missing


def load_dvc_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
