"""The whole pipeline in a temporary git+DVC repository, driven the way a user drives it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.project import released_project, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TRACKED = ("release.json", "k8s/base/release.yaml", "artifacts/model/model.joblib")


def _digests(root: Path, names=TRACKED) -> dict[str, str]:
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in names}


def _stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def _set_param(root: Path, section: str, key: str, value) -> None:
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw[section][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    # The session's first release of this project (make_project, `dvc repro`, committed).
    released = released_project(tmp_path_factory.mktemp("pipeline") / "repo")
    root = released.root
    # Its first repro ran every stage once.
    stages = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    ran = _stages_run(released.first_repro)
    assert sorted(ran) == sorted(stages)
    # Quiet: no DVC warning (an empty dependency, e.g. an empty __init__.py, used to print one
    # per stage).
    printed = released.first_repro + released.first_repro_stderr
    assert [line for line in printed.splitlines() if "WARNING" in line] == []
    assert ran.index("validate") < ran.index("split") < ran.index("tune") < ran.index("train")
    assert ran.index("train") < ran.index("evaluate") < ran.index("gate") < ran.index("package")
    return root


def test_repro_produces_a_release(project):
    release = json.loads((project / "release.json").read_text())
    assert release["image"].endswith(":" + release["bento_version"])
    assert release["model_hash"].startswith("sha256:")
    assert 0.6 < release["metrics"]["roc_auc"] < 1.0
    patch = yaml.safe_load((project / "k8s/base/release.yaml").read_text())
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == release["image"]
    summary = run(["mlgitops", "summary"], project).stdout
    assert release["bento_version"] in summary


def test_second_repro_is_a_noop_and_status_clean(project):
    again = run(["dvc", "repro"], project)
    assert _stages_run(again.stdout) == []
    assert "Data and pipelines are up to date" in run(["dvc", "status"], project).stdout


def test_param_change_reruns_only_dependent_stages(project):
    before = _digests(project)
    _set_param(project, "threshold", "false_positive_cost", 9.0)
    try:
        result = run(["dvc", "repro"], project)
        # The operating point moves: the gate, the monitoring reference, the alert rules, the
        # report and the export ledger's cost figures follow it; the model does not.
        assert set(_stages_run(result.stdout)) == {
            "evaluate", "gate", "score_reference", "rules", "package", "report", "export"
        }  # fmt: skip
        after = _digests(project)
        # Same model file, but a new threshold is a new bento: what the pod serves changed.
        assert after["artifacts/model/model.joblib"] == before["artifacts/model/model.joblib"]
        assert after["release.json"] != before["release.json"]
    finally:
        # Back to the committed release for the next tests, without running the stages again:
        # params.yaml, dvc.lock and the Git-tracked outputs from HEAD (index too: DVC's autostage
        # staged what the repro wrote), the rest from the cache.
        run(["git", "reset", "-q", "--hard", "HEAD"], project)
        run(["dvc", "checkout", "-q"], project)
    assert _digests(project) == before
    assert "up to date" in run(["dvc", "status"], project).stdout


def test_same_params_and_data_give_same_model_and_bento(project):
    release = json.loads((project / "release.json").read_text())
    # Each stage from the split on, run again by itself (not its unchanged upstream).
    run(["dvc", "repro", "--force", "--single-item", "split", "tune", "train", "evaluate",
         "package"], project)  # fmt: skip
    again = json.loads((project / "release.json").read_text())
    assert again["model_hash"] == release["model_hash"]
    assert again["bento_version"] == release["bento_version"]


def test_push_delete_pull_gives_identical_files(project):
    run(["dvc", "push"], project)
    before = _digests(project, ("data/transactions.csv", "artifacts/model/model.joblib"))
    shutil.rmtree(project / ".dvc" / "cache")
    (project / "data" / "transactions.csv").unlink()
    (project / "artifacts" / "model" / "model.joblib").unlink()
    run(["dvc", "pull"], project)
    assert _digests(project, tuple(before)) == before
    assert "up to date" in run(["dvc", "status"], project).stdout


BAD_INPUTS = {
    "missing target": ("transaction_id,amount\ntx1,1.0\n", "target column 'is_fraud'"),
    "empty file": ("", "file is empty"),
    "unparsable csv": ("a,b\n1,2\n1,2,3\n", "not a readable CSV file"),
}


@pytest.mark.parametrize("case", [*BAD_INPUTS, "three classes", "type changed"])
def test_bad_input_fails_clearly_and_keeps_artifacts(project, case):
    data = project / "data" / "transactions.csv"
    original = data.read_bytes()
    before = _digests(project)
    if case in BAD_INPUTS:
        content, message = BAD_INPUTS[case]
        data.write_text(content)
    elif case == "three classes":
        lines = original.decode().splitlines()
        lines[5] = lines[5][: lines[5].rfind(",")] + ",2"
        data.write_text("\n".join(lines) + "\n")
        message = "exactly two classes, found 3"
    else:
        lines = original.decode().splitlines()
        fields = lines[9].split(",")
        fields[2] = "12,50 EUR".replace(",", ";")
        lines[9] = ",".join(fields)
        data.write_text("\n".join(lines) + "\n")
        message = "column 'amount' is numeric in the schema but holds '12;50 EUR' (row 8)"
    try:
        result = run(["dvc", "repro"], project, check=False)
        assert result.returncode != 0
        assert message in result.stderr + result.stdout
        assert _digests(project) == before
    finally:
        # `dvc repro` records a changed data source in data.dvc before any stage runs; the
        # committed data.dvc in Git and the cache still hold the good version.
        data.write_bytes(original)
        run(["git", "checkout", "data.dvc"], project)
    assert "up to date" in run(["dvc", "status"], project).stdout
