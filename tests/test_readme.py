"""The README's promises to a newcomer, checked the way the newcomer follows them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from mlgitops.config import load_params
from mlgitops.export.runtimes import EXAMPLE_ROWS
from mlgitops.io import load_pipeline
from mlgitops.schema import load_schema
from tests.support.export_rows import read_rows_csv, scorer_output
from tests.support.project import REPO_ROOT, VENV_BIN, make_project, released_project, run
from tests.support.readme import README, readme_blocks


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


def _development_commands() -> list[str]:
    """The commands of the README's Development section, without their comments."""
    block = README.split("\n## Development\n", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _activated(script: str, tmp_path) -> subprocess.CompletedProcess[str]:
    # A pytest run inside this one keeps its temp directories under tmp_path.
    env = {**os.environ, "PYTEST_DEBUG_TEMPROOT": str(tmp_path)}
    return subprocess.run(
        ["bash", "-c", f"source {VENV_BIN}/activate && {script}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def test_the_development_commands_run_one_file_or_the_tests_a_name_matches(tmp_path) -> None:
    commands = _development_commands()
    assert "source .venv/bin/activate" in commands
    one_file, by_name = [command for command in commands if command.startswith("pytest ")]
    whole = _activated(one_file, tmp_path)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert " passed" in whole.stdout
    assert "deselected" not in whole.stdout
    matching = _activated(by_name, tmp_path)
    assert matching.returncode == 0, matching.stdout + matching.stderr
    assert " passed" in matching.stdout
    assert " deselected" in matching.stdout


def test_make_test_runs_every_core_and_the_quick_part_leaves_out_slow_tests(tmp_path) -> None:
    commands = _development_commands()
    assert "make test" in commands
    [quick] = [command for command in commands if command.startswith("make test PYTEST_ARGS=")]
    # What make would run, as make prints it (the venv is already set up: nothing else runs).
    dry = subprocess.run(
        ["bash", "-c", quick.replace("make test", "make --dry-run test", 1)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    [pytest_line] = [line for line in dry.stdout.splitlines() if line.startswith("pytest ")]
    assert pytest_line.startswith("pytest -n auto --dist loadfile ")
    assert ".ci/run" in README
    assert (REPO_ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")
    # The marker expression as make passes it: a file with slow and quick tests keeps the quick.
    listed = _activated(
        f"{pytest_line} tests/mlgitops/stages/test_tune.py --collect-only -q", tmp_path
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "test_tune.py::test_out_of_range_tuning_params_are_refused_with_their_location" in (
        listed.stdout
    )
    assert "test_tuning_improves_test_roc_auc" not in listed.stdout
    assert " deselected" in listed.stdout


@pytest.mark.slow
@pytest.mark.c
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)")
def test_the_export_example_runs_as_written_and_leaves_the_tree_clean(tmp_path) -> None:
    # The session's first release (its export stage ran): `dvc repro export` has nothing to do.
    root = released_project(tmp_path / "repo").root
    # A clone's ignore file (build/ is where the README builds the scorer).
    ignored = (REPO_ROOT / ".gitignore").read_text() + (root / ".gitignore").read_text()
    (root / ".gitignore").write_text(ignored)
    run(["dvc", "repro", "export"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "export"], root)
    dvc_before = run(["dvc", "status", "--json"], root).stdout

    [commands] = readme_blocks("## Exporting the model")
    shell = run(["bash", "-euo", "pipefail", "-c", commands], root)

    params = load_params(root / "params.yaml")
    schema = load_schema(root / params.paths.schema_file)
    rows_csv = (root / params.paths.export_dir / "rows.csv").read_text()
    rows = read_rows_csv(rows_csv, schema.categorical_features)
    pipeline = load_pipeline(root / params.paths.model)
    expected = pipeline.predict_proba(rows[schema.feature_names])[:, 1]
    threshold = json.loads((root / params.paths.metrics).read_text())["threshold"]
    scores, decisions = scorer_output(shell.stdout)
    assert len(scores) == len(rows) == EXAMPLE_ROWS
    assert np.max(np.abs(scores - expected)) <= params.export.parity_tolerance
    assert np.array_equal(decisions, expected >= threshold)
    # Nothing tracked changed, nothing untracked appeared, and DVC sees what it saw before.
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], root).stdout == ""
    assert run(["dvc", "status", "--json"], root).stdout == dvc_before
    assert "up to date" in run(["dvc", "status", "export"], root).stdout


def test_beyond_one_machine_commands_run_as_written(tmp_path) -> None:
    """README's dataset command, then docs/scale.md's Python on a 2-worker LocalCluster."""
    import yaml

    [command] = readme_blocks("### Beyond one machine")[:1]
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    done = subprocess.run(
        ["bash", "-c", f"source {VENV_BIN}/activate && {command}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote 1000000 rows in 4 Parquet files to data/big" in done.stdout
    assert sorted(p.name for p in (tmp_path / "data/big").iterdir()) == [
        f"part-0000{n}.parquet" for n in range(4)
    ]

    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["data"]["path"] = "data/big"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    docs = (REPO_ROOT / "docs/scale.md").read_text(encoding="utf-8")
    [script] = re.findall(r"^```python\n(.*?)^```", docs, flags=re.S | re.M)
    env["MLGITOPS_ENGINE"] = "cluster:2"
    ran = subprocess.run(
        [f"{VENV_BIN}/python", "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    frauds = int(ran.stdout.split()[0])
    assert 0.01 * 1_000_000 <= frauds <= 0.03 * 1_000_000
    assert "(LocalCluster of 2 worker processes at tcp://127.0.0.1:" in ran.stdout
