"""The README's promises to a newcomer, checked the way the newcomer follows them."""

from __future__ import annotations

import os
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
