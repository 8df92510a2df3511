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


# Jobs that run only trusted code (the base's, or main's after a merge) and may hold secrets.
TRUSTED_JOBS = {"judge", "deploy"}


def _steps(job: str) -> dict[str, dict]:
    return {step.get("id"): step for step in _workflow()["jobs"][job]["steps"]}


def test_the_workflow_judges_pull_requests_with_the_base_and_deploys_merges():
    workflow = _workflow()
    assert set(workflow["on"]) == {"pull_request", "push"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert set(jobs) == {"judge", "reproduce", "deploy"}
    for name in ("judge", "reproduce"):
        assert jobs[name]["if"] == "github.event_name == 'pull_request'"
    assert jobs["deploy"]["if"] == "github.event_name == 'push'"
    assert workflow["env"]["CI"] == "true"
    assert workflow["permissions"] == {}
    assert jobs["judge"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["reproduce"]["permissions"] == {"contents": "read"}
    judge = _steps("judge")
    # The judge checks out and installs the BASE; the head is fetched as data only.
    checkouts = [s for s in jobs["judge"]["steps"] if "actions/checkout@" in s.get("uses", "")]
    assert checkouts[0]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert checkouts[0]["with"]["path"] == jobs["judge"]["defaults"]["run"]["working-directory"]
    assert checkouts[1]["with"]["ref"] == "${{ github.event.pull_request.head.sha }}"
    assert checkouts[1]["with"]["path"] != checkouts[0]["with"]["path"]
    assert "make setup" in judge["setup"]["run"]
    assert '--base "$BASE_SHA" --head "$HEAD_SHA" --judge-from-base' in judge["report"]["run"]
    assert "gh pr comment" in judge["comment"]["run"]
    # The head's DVC objects are fetched through the base's remote config, never the head's.
    assert "cp .dvc/config ../pr-data/.dvc/config" in judge["data"]["run"]
    assert "dvc repro" in _steps("reproduce")["repro"]["run"]
    assert jobs["reproduce"]["needs"] == "judge"
    deploy = " ".join(step.get("run", "") for step in jobs["deploy"]["steps"])
    assert '--base "$BEFORE" --head "$GITHUB_SHA" --judge-from-base' in deploy
    assert "mlgitops deploy --env production" in deploy
    # Signed after the judge, deployed only as the signed commit (deploy verifies it).
    steps = [step.get("id") for step in jobs["deploy"]["steps"]]
    assert steps.index("judge") < steps.index("attest") < steps.index("deploy")
    assert "mlgitops attest --rev" in _steps("deploy")["attest"]["run"]
    assert "--allow-unverified" not in deploy
    assert _steps("deploy")["deploy"]["env"]["REV"] == "${{ steps.attest.outputs.rev }}"
    assert jobs["deploy"]["environment"] == "production"
    assert (REPO_ROOT / "k8s" / "overlays" / "production").is_dir()


def test_untrusted_code_runs_on_pull_request_never_pull_request_target():
    text = WORKFLOW.read_text()
    assert "pull_request_target" not in re.sub(r"#.*", "", text)
    assert "workflow_run" not in _workflow()["on"]


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_tag():
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    lines = [line for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert lines
    for line in lines:
        assert re.search(r"@[0-9a-f]{40}  # v\d+\.\d+\.\d+$", line), line


def test_secrets_are_only_in_jobs_that_run_trusted_code():
    workflow = _workflow()
    assert "secrets." not in yaml.safe_dump(workflow.get("env", {}))
    for name, job in workflow["jobs"].items():
        text = yaml.safe_dump(job)
        uses_secrets = "secrets." in text or "github.token" in text
        assert not uses_secrets or name in TRUSTED_JOBS, name
        # A job that installs the PR's code holds neither secrets nor a write permission.
        if name not in TRUSTED_JOBS:
            assert set(job["permissions"].values()) <= {"read"}, name
    deploy_secrets = yaml.safe_dump(_steps("deploy")["deploy"]["env"])
    assert "KUBECONFIG_DATA" in deploy_secrets
    assert workflow["jobs"]["deploy"]["environment"] == "production"
    # Secrets at step level only, in the steps that need them.
    for name in TRUSTED_JOBS:
        job = workflow["jobs"][name]
        assert "secrets." not in yaml.safe_dump(job.get("env", {})), name
        for step in job["steps"]:
            if "secrets." in yaml.safe_dump(step):
                assert "secrets." in yaml.safe_dump(step.get("env", {})), step
                assert "secrets." not in step.get("run", ""), step


def test_no_checkout_leaves_the_token_on_disk():
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            if "actions/checkout@" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False, step


@pytest.mark.parametrize("job", ["judge", "reproduce", "deploy"])
def test_every_step_is_well_formed_and_its_script_is_valid_bash(job):
    steps = _workflow()["jobs"][job]["steps"]
    ids = [step["id"] for step in steps if "id" in step]
    assert len(ids) == len(set(ids))
    for step in steps:
        assert ("uses" in step) != ("run" in step), step
        assert set(step) <= {"id", "name", "uses", "with", "run", "env", "if"}, step
        if "uses" in step:
            continue
        script = re.sub(r"\$\{\{.*?\}\}", "X", step["run"])
        check = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert check.returncode == 0, (step.get("id"), check.stderr)


def test_the_verdict_exit_codes_in_the_workflow_are_the_cli_ones():
    from mlgitops.errors import GateFailedError, GateInconclusiveError, PolicyChangedError

    codes = f"0|{GateFailedError.exit_code}|{GateInconclusiveError.exit_code}"
    codes += f"|{PolicyChangedError.exit_code}"
    assert codes in _steps("judge")["report"]["run"]
    assert f"0|{PolicyChangedError.exit_code})" in _steps("deploy")["judge"]["run"]


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
