"""The README's promises to a newcomer, checked the way the newcomer follows them."""

from __future__ import annotations

import os
import re
import subprocess

from tests.support.project import REPO_ROOT, VENV_BIN, make_project

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_tells_how_to_use_the_venv() -> None:
    assert "source .venv/bin/activate" in README
    assert "make run" in README
    assert "make test" in README


def test_activated_venv_runs_the_pipeline_commands(tmp_path) -> None:
    root = make_project(tmp_path / "repo", rows=1500)
    # A shell whose PATH knows nothing of the venv, as a new terminal would have.
    bare = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV"}}
    bare["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    activate = f"{VENV_BIN}/activate"

    def shell(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script], cwd=root, env=bare, capture_output=True, text=True, check=False
        )

    without = shell(f"{VENV_BIN}/dvc repro validate")
    assert without.returncode != 0  # the stages call `mlgitops`, not on a bare PATH
    activated = shell(f"source {activate} && dvc repro validate && mlgitops --help")
    assert activated.returncode == 0, activated.stderr
    assert "Running stage 'validate'" in activated.stdout


def _all_errors(cls: type) -> list[type]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _all_errors(child))]


def test_the_cli_section_lists_every_exit_code_the_errors_use() -> None:
    from mlgitops import errors

    section = README.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    listed_text = section.split("non-zero exit code (", 1)[1].split(").\n", 1)[0]
    listed: set[int] = set()
    for low, high in re.findall(r"\b(\d+)(?:-(\d+))?\b", listed_text):
        listed.update(range(int(low), int(high or low) + 1))
    codes = {cls.exit_code for cls in _all_errors(errors.MlgitopsError)} - {1}
    assert codes - listed == set(), "documented nowhere in README's CLI section"
    assert listed - codes == set(), "documented but raised by no error class"
    assert "28 not a release" in " ".join(listed_text.split())
