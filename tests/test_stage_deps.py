"""dvc.yaml declares, for each stage, every project module the stage imports (transitively).

Otherwise editing such a module leaves `dvc status` clean over stale artifacts: the one thing a
Git-native pipeline promises cannot happen.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.support.project import REPO_ROOT, released_project, run
from tests.support.stage_deps import load_dvc_yaml, missing_code_deps, required_code_deps

SRC = REPO_ROOT / "src"


def test_every_stage_declares_every_module_it_imports() -> None:
    missing = missing_code_deps(load_dvc_yaml(REPO_ROOT / "dvc.yaml"), SRC)
    assert missing == {}, f"add these to the stage's deps in dvc.yaml: {missing}"


@pytest.mark.parametrize(
    "stage", ["validate", "split", "tune", "train", "evaluate", "gate", "package"]
)
def test_the_check_fails_when_a_module_is_removed(stage: str) -> None:
    dvc_yaml = load_dvc_yaml(REPO_ROOT / "dvc.yaml")
    broken = copy.deepcopy(dvc_yaml)
    deps = broken["stages"][stage]["deps"]
    removed = next(dep for dep in deps if dep == "src/mlgitops/schema.py")
    deps.remove(removed)
    assert missing_code_deps(broken, SRC) == {stage: [removed]}


def test_lazy_and_transitive_imports_count() -> None:
    # validate imports profile.normalize_category; train needs schema.py via records.py too.
    assert "src/mlgitops/profile.py" in required_code_deps("validate", SRC)
    assert "src/mlgitops/data/table.py" in required_code_deps("split", SRC)
    # The package stage ships the service: its modules are the stage's code too.
    assert "src/mlgitops/serving/features.py" in required_code_deps("package", SRC)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_editing_an_imported_module_marks_its_stages_changed(tmp_path) -> None:
    root = released_project(tmp_path / "repo").root
    run(["dvc", "repro"], root)
    assert "up to date" in run(["dvc", "status"], root).stdout
    table = root / "src/mlgitops/data/table.py"
    table.write_text(table.read_text() + "\n# an edit\n")
    status = run(["dvc", "status", "--json"], root).stdout
    changed = set(json.loads(status))
    # Exactly the stages that import table.py (directly or not) are stale; train is not.
    stages = load_dvc_yaml(root / "dvc.yaml")["stages"]
    importers = {s for s in stages if "src/mlgitops/data/table.py" in required_code_deps(s, SRC)}
    assert {"validate", "split"} <= importers
    assert "train" not in importers
    assert changed == importers
