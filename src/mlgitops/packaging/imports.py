"""Which project modules a module needs: the transitive closure of its `mlgitops.*` imports.

Read from the source with `ast`, never by importing, and counting imports inside functions too
(the project imports heavy libraries lazily), so the answer is a safe superset. Two facts rest
on it: the files a bento ships (the closure of the service module) and the code dependencies
that `dvc.yaml` must declare for each stage (checked by a test).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "mlgitops"


def package_root() -> Path:
    """The directory of the `mlgitops` package that is running (the repository's src/mlgitops)."""
    import mlgitops

    return Path(mlgitops.__file__).resolve().parent


def module_file(module: str, root: Path) -> Path | None:
    """`mlgitops.a.b` -> root/a/b.py or root/a/b/__init__.py; None if it is not a module."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if parts and candidate.is_file():
            return candidate
    return root / "__init__.py" if not parts else None


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from mlgitops.x import y` may name a submodule y.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def module_closure(module: str, root: Path | None = None) -> list[Path]:
    """The source files `module` needs, itself and its packages' `__init__.py` included, sorted."""
    root = root or package_root()
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        for part in _with_parents(name):
            path = module_file(part, root)
            if path is None or path in seen:
                continue
            seen.add(path)
            pending.extend(_imported_modules(path))
    return sorted(seen)
