"""Builders for tests: params pointing into a temp dir, small datasets, temp git+DVC projects."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlgitops.config import Params, parse_params
from mlgitops.data.generate import GeneratorConfig, write_dataset
from tests.support import shared

REPO_ROOT = Path(__file__).resolve().parents[2]
# dvc, mlgitops and kubectl live beside the interpreter running the tests (the venv's bin).
VENV_BIN = str(Path(sys.executable).parent)


def raw_params() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def params_in(root: Path, rows: int = 3000, **sections: dict) -> Params:
    """The project's params.yaml with every path moved under `root` and small-data limits."""
    raw = raw_params()
    # Everything moves under root but the lock, which is the repository's own.
    raw["paths"] = {
        key: str((REPO_ROOT if key == "requirements_lock" else root) / value)
        for key, value in raw["paths"].items()
    }
    raw["data"]["path"] = str(root / "data" / "transactions.csv")
    raw["validate"]["min_rows"] = min(raw["validate"]["min_rows"], rows // 2)
    raw["validate"]["min_positive"] = 5
    raw["train"]["hist_gradient_boosting"]["max_iter"] = 50
    raw["train"]["random_forest"]["n_estimators"] = 20
    # Stages called one by one fit params.yaml's config; tests of `tune` switch it on.
    raw["tune"]["enabled"] = False
    # Nor are they in a Git repository: no champion to read (tests of `gate` set one).
    raw["gate"]["base"] = None
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return parse_params(raw)


def write_small_dataset(path: Path, rows: int = 3000, seed: int = 7) -> Path:
    write_dataset(path, GeneratorConfig(rows=rows, seed=seed))
    return path


@dataclass
class GitRepo:
    """A test repository: `git(...)` runs there and returns stdout, stripped; a failure raises."""

    path: Path

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args], capture_output=True, text=True, check=True
        )
        return proc.stdout.strip()


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None):
    path = VENV_BIN + os.pathsep + os.environ.get("PATH", "")
    result = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": path, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


# What a test project is made of; any change to these makes a new shared template.
PROJECT_INPUTS = ("src", "k8s", "dvc.yaml", ".dvcignore", "requirements.lock", "params.yaml")
# The remote a shared template records, replaced by each copy's own (see copy_project).
_TEMPLATE_REMOTE = "/nonexistent/mlgitops-test-template-remote"


@functools.cache
def _inputs_digest() -> str:
    return shared.digest_files(REPO_ROOT, PROJECT_INPUTS)


def make_project(
    root: Path,
    rows: int = 3000,
    remote: Path | None = None,
    default_data: bool = False,
    real_params: bool = False,
) -> Path:
    """A git+DVC repository laid out like this one, with a generated dataset committed.

    `default_data` writes the embedded default dataset instead of a small one; `real_params`
    keeps params.yaml as it is instead of shrinking the model for fast tests. The DVC remote
    (`remote`, else `<root>-remote` beside it) is the repository's default in .dvc/config.local,
    so it names this copy's own remote. In a test session the repository is built once per
    recipe and copied (tests/support/shared.py).
    """
    remote = remote or root.parent / f"{root.name}-remote"
    recipe = {
        "rows": rows,
        "default_data": default_data,
        "real_params": real_params,
        "inputs": _inputs_digest(),
    }

    def build(staging: Path) -> None:
        _build_project(staging / "repo", rows, Path(_TEMPLATE_REMOTE), default_data, real_params)

    template = shared.entry("project", recipe, build)
    if template is None:
        return _build_project(root, rows, remote, default_data, real_params)
    return copy_project(template / "repo", root, remote)


def _build_project(
    root: Path, rows: int, remote: Path, default_data: bool, real_params: bool
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        REPO_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    if (REPO_ROOT / "k8s").is_dir():
        shutil.copytree(REPO_ROOT / "k8s", root / "k8s", dirs_exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", "requirements.lock"):
        shutil.copy(REPO_ROOT / name, root / name)
    raw = raw_params()
    if not real_params:
        raw["validate"]["min_rows"] = rows // 2
        raw["validate"]["min_positive"] = 5
        raw["train"]["hist_gradient_boosting"]["max_iter"] = 50
        # A real but small search, so `dvc repro` runs every stage quickly.
        raw["tune"].update(trials=3, cv_folds=2)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (root / ".gitignore").write_text("__pycache__/\n*.egg-info/\n")
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "config", "user.email", "test@example.com"], root)
    run(["git", "config", "user.name", "test"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    run(["dvc", "config", "core.autostage", "true"], root)
    run(["dvc", "remote", "add", "--local", "-d", "local", str(remote)], root)
    if default_data:
        write_dataset(root / "data" / "transactions.csv", GeneratorConfig())
    else:
        write_small_dataset(root / "data" / "transactions.csv", rows=rows)
    run(["dvc", "add", "-q", "data"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "project with small data"], root)
    return root


def copy_project(template: Path, root: Path, remote: Path) -> Path:
    """A copy of a shared template repository at `root`, its DVC remote set to `remote`.

    DVC's .dvc/tmp (its lock and its index of file hashes by inode) stays behind: DVC makes it
    again and hashes the copied files afresh."""

    def skip_dvc_tmp(directory: str, names: list[str]) -> set[str]:
        return {"tmp"} & set(names) if Path(directory) == template / ".dvc" else set()

    shutil.copytree(template, root, symlinks=True, ignore=skip_dvc_tmp)
    config = root / ".dvc" / "config.local"
    text = config.read_text(encoding="utf-8")
    assert _TEMPLATE_REMOTE in text, text
    config.write_text(text.replace(_TEMPLATE_REMOTE, str(remote)), encoding="utf-8")
    return root


@dataclass(frozen=True)
class ReleasedProject:
    root: Path
    bentoml_home: Path
    # What the first `dvc repro` printed (every stage ran): stdout, then stderr.
    first_repro: str
    first_repro_stderr: str


def released_project(
    root: Path, rows: int = 4000, bentoml_home: Path | None = None, remote: Path | None = None
) -> ReleasedProject:
    """`make_project`, then `dvc repro` (bentos into `bentoml_home`, else `<root>/../bentoml`)
    and the outputs committed as "release 1": the first release every end-to-end test starts
    from. In a test session it is built once per recipe and copied, BentoML store included, so
    the tests share one build by using the same `rows` (the default)."""
    home = bentoml_home or root.parent / "bentoml"
    remote = remote or root.parent / f"{root.name}-remote"

    def release(repo: Path, store: Path) -> tuple[str, str]:
        first = run(["dvc", "repro"], repo, env={"BENTOML_HOME": str(store)})
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-qm", "release 1"], repo)
        return first.stdout, first.stderr

    def build(staging: Path) -> None:
        repo = make_project(staging / "repo", rows=rows, remote=Path(_TEMPLATE_REMOTE))
        stdout, stderr = release(repo, staging / "bentoml")
        (staging / "first-repro.out").write_text(stdout)
        (staging / "first-repro.err").write_text(stderr)

    template = shared.entry("released", {"rows": rows, "inputs": _inputs_digest()}, build)
    if template is None:
        return ReleasedProject(root, home, *release(make_project(root, rows, remote=remote), home))
    copy_project(template / "repo", root, remote)
    shutil.copytree(template / "bentoml", home, symlinks=True)
    printed = [(template / f"first-repro.{kind}").read_text() for kind in ("out", "err")]
    return ReleasedProject(root, home, *printed)
