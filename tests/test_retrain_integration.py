"""Retraining end to end in a temp git+DVC project: the first release passes with no champion,
a pull request runs the GitOps workflow's own commands (docs/ci/github-actions.yml) from a
fresh cache, and a degraded challenger is judged FAIL and not released."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlgitops.errors import PolicyChangedError
from tests.support.project import REPO_ROOT, VENV_BIN, released_project, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WORKFLOW = REPO_ROOT / "docs" / "ci" / "github-actions.yml"
# The PR jobs' steps that run on any machine (setup, checkout, the PR comment and the artifact
# hand-over need GitHub): the trusted judge's, then the untrusted reproduce job's.
LOCAL_STEPS = (("judge", "data"), ("judge", "report"), ("judge", "verdict"), ("reproduce", "repro"))


def _set(root: Path, section: str, values: dict) -> None:
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    for key, value in values.items():
        target = raw[section]
        *parents, last = key.split(".")
        for parent in parents:
            target = target[parent]
        target[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _gate(root: Path) -> dict:
    return json.loads((root / "reports" / "gate.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("retrain")
    root = released_project(base / "repo").root
    run(["git", "init", "-q", "--bare", str(base / "origin.git")], base)
    run(["git", "remote", "add", "origin", str(base / "origin.git")], root)
    run(["dvc", "push", "-q"], root)
    run(["git", "push", "-q", "-u", "origin", "main"], root)
    return root


def test_the_first_release_passes_with_no_champion(project):
    report = _gate(project)
    assert report["verdict"] == "PASS"
    assert report["reason"] == "no champion: HEAD has no release (first release)"
    assert (
        (project / "reports" / "gate.md")
        .read_text()
        .startswith("## Champion / challenger gate: **PASS**")
    )
    tuned = json.loads((project / "artifacts" / "tuned_params.json").read_text())
    assert tuned["enabled"] is True
    assert tuned["n_trials"] == 3


def _expand(script: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        expression = match.group(1).strip()
        assert expression in values, f"the test does not know ${{{{ {expression} }}}}"
        return values[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", replace, script)


def _run_step(root: Path, step: dict, values: dict[str, str], output: Path):
    env = {"CI": "true", "GITHUB_OUTPUT": str(output), "PATH": VENV_BIN + ":/usr/bin:/bin"}
    env.update({k: _expand(str(v), values) for k, v in (step.get("env") or {}).items()})
    return subprocess.run(
        ["bash", "-e", "-c", _expand(step["run"], values)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, **env},
    )


def _run_pr_jobs(root: Path, output: Path) -> dict[str, object]:
    """Run LOCAL_STEPS of the workflow's PR jobs in `root` (HEAD: the PR, main: its base)."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    values = {
        "github.event.pull_request.base.sha": run(
            ["git", "rev-parse", "main"], root
        ).stdout.strip(),
        "github.event.pull_request.head.sha": run(
            ["git", "rev-parse", "HEAD"], root
        ).stdout.strip(),
    }
    # The trusted steps' read-only DVC credentials: none for the test's directory remote.
    values |= {"secrets.DVC_AWS_ACCESS_KEY_ID": "", "secrets.DVC_AWS_SECRET_ACCESS_KEY": ""}
    results = {}
    for job, step_id in LOCAL_STEPS:
        steps = {step.get("id"): step for step in workflow["jobs"][job]["steps"]}
        if step_id == "verdict":
            outputs = dict(line.split("=", 1) for line in output.read_text().split())
            values["steps.report.outputs.verdict_exit"] = outputs["verdict_exit"]
        results[step_id] = _run_step(root, steps[step_id], values, output)
    return results


def test_a_pull_request_runs_the_workflow_commands_locally(project, tmp_path):
    run(["git", "checkout", "-q", "-b", "cheaper-reviews"], project)
    _set(project, "threshold", {"false_positive_cost": 4.0})
    run(["dvc", "repro"], project)
    # Same model, new threshold: the gate passes it as the champion itself.
    assert _gate(project)["reason"] == "the challenger is the champion (same model hash)"
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "review cost 4 EUR"], project)
    run(["dvc", "push", "-q"], project)
    # A CI runner starts with an empty cache: the base's model comes from the DVC remote.
    shutil.rmtree(project / ".dvc" / "cache")

    output = tmp_path / "github_output"
    output.write_text("")
    results = _run_pr_jobs(project, output)
    codes = {step: result.returncode for step, result in results.items()}
    # A PASS, but the change edits the gate's policy (threshold costs): a policy owner reviews.
    assert codes == {"data": 0, "report": 0, "verdict": 33, "repro": 0}, {
        step: result.stderr for step, result in results.items()
    }
    report = (project / "mlgitops-report.md").read_text()
    assert report == results["report"].stdout
    assert "## Policy changed: 1 key of the gate's policy" in report
    assert "| threshold.false_positive_cost | `5.0` | `4.0` |" in report
    assert "## Champion / challenger gate: **PASS**" in report
    assert "| threshold |" in report
    assert "The data is unchanged." in report
    assert "3 trials, 2 time_ordered CV folds" in report
    assert "\r" not in report  # no progress lines in CI


def test_report_pr_exits_by_verdict_on_the_two_releases(project):
    result = run(
        ["mlgitops", "report", "pr", "--base", "main", "--head", "HEAD"], project, check=False
    )
    # HEAD changed threshold.false_positive_cost, the gate's policy: a PASS that needs review.
    assert result.returncode == PolicyChangedError.exit_code, result.stderr
    assert result.stdout.startswith("# mlgitops: `main`")
    missing = run(["mlgitops", "report", "pr", "--base", "nope"], project, check=False)
    assert missing.returncode == 12
    assert missing.stderr.strip().startswith("error: revision 'nope' is not a commit")


def _package_outs(root: Path) -> list:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]["package"]["outs"]


def test_a_degraded_challenger_fails_the_gate_is_not_released_and_fails_its_pr(project, tmp_path):
    run(["git", "checkout", "-q", "main"], project)
    run(["dvc", "pull", "-q"], project)
    run(["git", "checkout", "-q", "-b", "worse"], project)
    release = (project / "release.json").read_bytes()
    released_outs = _package_outs(project)
    _set(project, "tune", {"enabled": False})
    _set(
        project,
        "train",
        {"hist_gradient_boosting.max_iter": 1, "hist_gradient_boosting.max_leaf_nodes": 2},
    )
    # The pipeline finishes: the release stages keep the champion's outputs and say so.
    result = run(["dvc", "repro"], project)
    assert re.search(
        r"^package: gate verdict FAIL \(see reports/gate.md\): release not changed; release.json "
        r"and k8s/base/release.yaml still pin fraud-detector:",
        result.stdout,
        re.MULTILINE,
    )
    assert _gate(project)["verdict"] == "FAIL"
    assert _gate(project)["reason"].startswith("ROC AUC worse by more than")
    assert (project / "release.json").read_bytes() == release
    # The release, its k8s pin, the alert rules and the bento archive stay the champion's.
    assert run(["git", "status", "--porcelain", "release.json", "k8s"], project).stdout == ""
    assert _package_outs(project) == released_outs
    assert "up to date" in run(["dvc", "status"], project).stdout

    # Committed anyway and proposed: the workflow's PR job fails on the committed verdict.
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "a worse model"], project)
    run(["dvc", "push", "-q"], project)
    shutil.rmtree(project / ".dvc" / "cache")
    output = tmp_path / "github_output"
    output.write_text("")
    codes = {step: result.returncode for step, result in _run_pr_jobs(project, output).items()}
    assert codes == {"data": 0, "report": 0, "verdict": 17, "repro": 0}
    report = (project / "mlgitops-report.md").read_text()
    assert "## Not a release: head's model did not pass the gate (FAIL)" in report
    assert "## Champion / challenger gate, as committed at head: **FAIL**" in report
