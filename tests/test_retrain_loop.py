"""`mlgitops retrain` end to end in a temp git+DVC project against the fake API server: after
concept drift, fresh labelled data gives a challenger that PASSes, is committed on a branch and,
once merged, deploys; a degraded challenger FAILs and leaves nothing behind. (Equal models: the
gate's false-FAIL rate is shown at or below alpha by simulation in tests/mlgitops/gate/
test_compare.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.mlgitops.deploy.helpers import (
    bootstrap_environments,
    deployed_image,
    running_images,
)
from tests.support.fake_kube import FakeKubeServer
from tests.support.project import REPO_ROOT, VENV_BIN, make_project, released_project, run

pytestmark = [pytest.mark.slow, pytest.mark.k8s, pytest.mark.timeout(1500)]


def _untouched(root: Path) -> tuple[str, str, str, bytes]:
    """main's commit, the branches, the working tree's status and the data: what must not move."""
    return (
        run(["git", "rev-parse", "main"], root).stdout,
        run(["git", "branch", "--list"], root).stdout,
        run(["git", "status", "--porcelain"], root).stdout,
        (root / "data" / "transactions.csv").read_bytes(),
    )


def test_retrain_after_concept_drift_passes_deploys_and_a_degraded_one_fails(
    tmp_path: Path, fake_kube: FakeKubeServer
) -> None:
    env = {"BENTOML_HOME": str(tmp_path / "bentoml")}
    root = released_project(tmp_path / "repo").root
    # A clone's ignore rules (the refused retrain's evidence goes under reports/retrain/).
    ignored = (root / ".gitignore").read_text() + (REPO_ROOT / ".gitignore").read_text()
    (root / ".gitignore").write_text(ignored)
    run(["git", "commit", "-qam", "ignore what a clone ignores"], root)
    first = json.loads((root / "release.json").read_text())
    bootstrap_environments(fake_kube)
    deploy = [
        "mlgitops",
        "deploy",
        "--env",
        "staging",
        "--allow-unverified",  # unsigned here; tests/mlgitops/attest signs and verifies
        "--kubeconfig",
        str(fake_kube.kubeconfig_path),
    ]
    run([*deploy, "--repo", str(root)], root, env=env)
    assert deployed_image(fake_kube) == first["image"]

    # Fraud moves to what used to be safe; the fresh period is labelled.
    fresh = tmp_path / "fresh"
    run(["mlgitops", "data", "traffic", str(fresh), "--scenario", "concept_drift",
         "--rows", "12000", "--days", "30"], root, env=env)  # fmt: skip
    before = _untouched(root)
    pr_body = tmp_path / "pr.md"
    result = run(
        ["mlgitops", "retrain", "--predictions", str(fresh / "predictions.jsonl"),
         "--labels", str(fresh / "labels.csv"), "--pr-body", str(pr_body)],
        root, env={**env, "CI": "true"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gate PASS: ")
    # The user's checkout and main are as they were; the proposal is a branch.
    assert _untouched(root)[0] == before[0]
    assert _untouched(root)[2:] == before[2:]
    [branch] = [
        b.strip() for b in run(["git", "branch", "--list", "retrain/*"], root).stdout.split()
    ]
    message = run(["git", "log", "-1", "--format=%B", branch], root).stdout
    assert message.startswith("Retrain: ")
    assert "(gate PASS)" in message
    assert "ingested 12000 rows" in message
    changed = set(run(["git", "diff", "--name-only", "main", branch], root).stdout.split())
    assert {"data.dvc", "dvc.lock", "release.json", "k8s/base/release.yaml"} <= changed
    body = pr_body.read_text()
    assert "## Champion / challenger gate: **PASS**" in body
    assert "## Fresh data" in body
    assert "| rows added | 12,000" in body
    assert "\r" not in body

    # Merging deploys: the new model's image rolls out and serves.
    run(["git", "merge", "-q", "--ff-only", branch], root)
    second = json.loads((root / "release.json").read_text())
    assert second["model_hash"] != first["model_hash"]
    run([*deploy, "--repo", str(root)], root, env=env)
    assert deployed_image(fake_kube) == second["image"]
    assert running_images(fake_kube) == {second["image"]}
    run(["dvc", "checkout", "-q"], root, env=env)

    # A deliberately degraded challenger: FAIL, exit 17, nothing committed, no branch.
    before = _untouched(root)
    worse = run(
        ["mlgitops", "retrain", "--set", "tune.enabled=false",
         "--set", "train.hist_gradient_boosting.max_iter=1",
         "--set", "train.hist_gradient_boosting.max_leaf_nodes=2"],
        root, env=env, check=False,
    )  # fmt: skip
    assert worse.returncode == 17, (worse.stdout, worse.stderr)
    # Not a terminal: a line per step and per pipeline stage on stderr, then the error.
    *steps, line = worse.stderr.strip().splitlines()
    assert line.startswith("error: gate FAIL: ROC AUC worse")
    assert "nothing committed" in line
    assert all(step.startswith("retrain: ") for step in steps)
    assert "retrain: stage train started" in steps
    assert any(re.fullmatch(r"retrain: stage gate finished in \d+\.\d s", s) for s in steps)
    # The evidence, where the line says: the challenger's gate report and metrics, and the log.
    found = re.search(r"the challenger's gate report: (\S+) .*the dvc repro log: (\S+)$", line)
    assert found is not None, line
    report, log = root / found.group(1), root / found.group(2)
    assert found.group(1).startswith("reports/retrain/retrain-")
    assert report.read_text().startswith("## Champion / challenger gate: **FAIL**")
    assert json.loads((report.parent / "gate.json").read_text())["verdict"] == "FAIL"
    assert json.loads((report.parent / "metrics" / "gate.json").read_text())["verdict"] == "FAIL"
    assert "roc_auc" in json.loads((report.parent / "metrics" / "evaluate.json").read_text())
    # The worktree's `dvc repro` finished (the release stages kept the champion's outputs);
    # the loop refused on the verdict it read, not on a failing stage.
    assert log.parent == root / ".git" / "mlgitops" / "retrain"
    text = log.read_text()
    assert "package: gate verdict FAIL (see reports/gate.md): release not changed" in text
    assert "ERROR" not in text
    assert _untouched(root) == before
    assert run(["git", "worktree", "list"], root).stdout.count("\n") == 1
    # Cancelled mid-way (a CI job stopped): the temporary worktree goes, nothing is left.
    process = subprocess.Popen(
        [f"{VENV_BIN}/mlgitops", "retrain", "--set", "train.hist_gradient_boosting.max_iter=7"],
        cwd=root, env={**os.environ, **env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while run(["git", "worktree", "list"], root).stdout.count("\n") < 2:
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    assert run(["git", "worktree", "list"], root).stdout.count("\n") == 1
    assert _untouched(root) == before
    typo = run(["mlgitops", "retrain", "--set", "train.max_iters=3"], root, env=env, check=False)
    assert typo.returncode == 2
    *progress, line = typo.stderr.strip().splitlines()
    assert all(p.startswith("retrain: ") for p in progress), progress
    assert line.startswith("error: params.yaml with --set train.max_iters=3: train.max_iters:")
    assert "unknown key" in line
    assert _untouched(root) == before


def test_retrain_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", rows=3000)
    before = _untouched(root)
    # The project's only commit has no release: nothing to gate against.
    cases = [
        (["--set", "train.model=random_forest"], 20, "has no release.json: no champion"),
        (["--base", "nope", "--set", "a.b=1"], 12, "revision 'nope' is not a commit"),
    ]
    for args, code, message in cases:
        result = run(["mlgitops", "retrain", *args], root, check=False)
        assert result.returncode == code, (args, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert message in line
    assert _untouched(root) == before
