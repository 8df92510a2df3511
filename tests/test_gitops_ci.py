"""The GitOps CI workflow and the Argo CD Applications parse and keep the contracts the project
relies on (the commands are run for real in test_retrain_integration.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.project import REPO_ROOT

WORKFLOW = REPO_ROOT / "docs" / "ci" / "github-actions.yml"
ARGOCD = sorted((REPO_ROOT / "k8s" / "argocd").glob("*.yaml"))


def _workflow() -> dict:
    raw = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    raw["on"] = raw.pop(True)
    return raw


def test_the_workflow_gates_pull_requests_and_deploys_merges():
    workflow = _workflow()
    assert set(workflow["on"]) == {"pull_request", "push"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    gate, deploy = workflow["jobs"]["gate"], workflow["jobs"]["deploy"]
    assert gate["if"] == "github.event_name == 'pull_request'"
    assert deploy["if"] == "github.event_name == 'push'"
    assert workflow["env"]["CI"] == "true"
    assert workflow["permissions"]["pull-requests"] == "write"
    runs = {step.get("id"): step.get("run", "") for step in gate["steps"]}
    assert "dvc repro" in runs["repro"]
    assert 'mlgitops report pr --base "$BASE" --head HEAD' in runs["report"]
    assert "gh pr comment" in runs["comment"]
    deploy_runs = " ".join(step.get("run", "") for step in deploy["steps"])
    assert "mlgitops deploy --env production" in deploy_runs
    assert (REPO_ROOT / "k8s" / "overlays" / "production").is_dir()


@pytest.mark.parametrize("job", ["gate", "deploy"])
def test_every_step_is_well_formed_and_its_script_is_valid_bash(job):
    steps = _workflow()["jobs"][job]["steps"]
    ids = [step["id"] for step in steps if "id" in step]
    assert len(ids) == len(set(ids))
    for step in steps:
        assert ("uses" in step) != ("run" in step), step
        assert set(step) <= {"id", "name", "uses", "with", "run", "env", "if"}, step
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]
            continue
        script = re.sub(r"\$\{\{.*?\}\}", "X", step["run"])
        check = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert check.returncode == 0, (step.get("id"), check.stderr)


def test_the_verdict_exit_codes_in_the_workflow_are_the_cli_ones():
    from mlgitops.errors import GateFailedError, GateInconclusiveError

    steps = {step.get("id"): step for step in _workflow()["jobs"]["gate"]["steps"]}
    codes = f"0|{GateFailedError.exit_code}|{GateInconclusiveError.exit_code}"
    assert codes in steps["report"]["run"]


def test_there_is_an_argocd_application_per_environment():
    overlays = sorted(p.name for p in (REPO_ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
    assert [p.stem for p in ARGOCD] == overlays


@pytest.mark.parametrize("path", ARGOCD, ids=lambda p: p.stem)
def test_argocd_application_syncs_its_overlay(path: Path):
    [app] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    assert set(app["spec"]) == {"project", "source", "destination", "syncPolicy"}
    source = app["spec"]["source"]
    assert set(source) == {"repoURL", "targetRevision", "path"}
    assert source["path"] == f"k8s/overlays/{path.stem}"
    overlay = yaml.safe_load((REPO_ROOT / source["path"] / "kustomization.yaml").read_text())
    # Argo CD must sync into the namespace the overlay renders into.
    assert app["spec"]["destination"]["namespace"] == overlay["namespace"]
    assert app["spec"]["destination"]["server"] == "https://kubernetes.default.svc"
    automated = app["spec"]["syncPolicy"]["automated"]
    assert automated == {"prune": True, "selfHeal": True}
