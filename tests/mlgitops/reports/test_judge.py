"""A pull request cannot judge itself: in a temp git+DVC project with a released main, a head
that loosens the gate's policy and releases a worse model, and a head whose CODE always says
PASS, both FAIL under `mlgitops report pr --judge-from-base` (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.project import make_project, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Enough rows that a much worse model is SHOWN worse (FAIL, not INCONCLUSIVE) on the test split.
ROWS = 8000


def _set(root: Path, values: dict[str, object]) -> None:
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    for dotted, value in values.items():
        *parents, last = dotted.split(".")
        target = raw
        for parent in parents:
            target = target[parent]
        target[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


# A worse model, as in the issue: no tuning, 3 boosting rounds, every category folded together.
WORSE = {
    "tune.enabled": False,
    "train.hist_gradient_boosting.max_iter": 3,
    "train.min_category_frequency": 1000000,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("judge") / "repo", rows=ROWS)
    # The champion needs no search to be good here, and the gate no quantized or C exports.
    _set(root, {"tune.enabled": False, "export.artifacts": ["onnx"]})
    run(["dvc", "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "release 1"], root)
    return root


def _release_on_branch(root: Path, branch: str, env: dict | None = None) -> str:
    run(["dvc", "repro"], root, env=env)
    gate = json.loads((root / "reports" / "gate.json").read_text())
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", f"{branch}: release"], root)
    return gate["verdict"]


def _report(root: Path, head: str, *flags: str, env: dict | None = None):
    return run(
        ["mlgitops", "report", "pr", "--base", "main", "--head", head, *flags],
        root,
        check=False,
        env=env,
    )


def test_a_head_that_loosens_its_own_gate_fails_under_the_base_policy(project, tmp_path):
    run(["git", "checkout", "-q", "-b", "pr-bad", "main"], project)
    _set(project, {**WORSE, "gate.auc_margin": 0.99, "gate.cost_margin_per_1000": 1e6})
    # Under its own margins the head's pipeline releases the worse model.
    assert _release_on_branch(project, "pr-bad") == "PASS"
    run(["git", "checkout", "-q", "main"], project)

    record = tmp_path / "verdict.json"
    judged = _report(project, "pr-bad", "--judge-from-base", "--verdict-json", str(record))
    assert judged.returncode == 17, judged.stderr
    assert "## Policy changed: 2 keys of the gate's policy" in judged.stdout
    assert "**policy changed**" in judged.stdout
    assert "| gate.auc_margin | `0.01` | `0.99` |" in judged.stdout
    assert "## Champion / challenger gate: **FAIL**" in judged.stdout
    assert "ROC AUC worse by more than 0.01" in judged.stdout
    assert "reusing" in judged.stderr  # the base's lock is the running venv's
    verdict = json.loads(record.read_text())
    assert verdict["verdict"] == "FAIL"
    assert verdict["exit_code"] == 17
    assert verdict["judged_by"] == "base"
    assert verdict["policy_changed"] is True
    assert verdict["changed_keys"] == ["gate.auc_margin", "gate.cost_margin_per_1000"]
    assert verdict["gate"]["roc_auc"]["margin"] == 0.01
    # The running code judges the same way (the policy comes from the base either way).
    assert _report(project, "pr-bad").returncode == 17
    # No base worktree is left behind.
    assert run(["git", "worktree", "list"], project).stdout.count("\n") == 1


def test_a_policy_change_on_a_passing_model_exits_33(project):
    run(["git", "checkout", "-q", "-b", "pr-margin", "main"], project)
    _set(project, {"gate.auc_margin": 0.02})
    # Same model (only the gate's params changed): the gate passes it as the champion itself.
    assert _release_on_branch(project, "pr-margin") == "PASS"
    run(["git", "checkout", "-q", "main"], project)
    judged = _report(project, "pr-margin", "--judge-from-base")
    assert judged.returncode == 33, judged.stderr
    assert "## Policy changed: 1 key of the gate's policy" in judged.stdout
    assert "## Champion / challenger gate: **PASS**" in judged.stdout


def test_hostile_head_code_cannot_change_the_verdict(project):
    run(["git", "checkout", "-q", "-b", "pr-code", "main"], project)
    _set(project, WORSE)
    # The head's gate says PASS whatever the figures (its stage and `report pr` both use it).
    gate = project / "src" / "mlgitops" / "gate" / "compare.py"
    text = gate.read_text()
    assert "verdict = combine(auc.verdict, cost.verdict)" in text
    gate.write_text(
        text.replace("verdict = combine(auc.verdict, cost.verdict)", 'verdict = "PASS"')
    )
    head_code = {"PYTHONPATH": str(project / "src")}
    assert _release_on_branch(project, "pr-code", env=head_code) == "PASS"

    # The head's own code (checked out, on PYTHONPATH) would let it through...
    assert _report(project, "pr-code", env=head_code).returncode == 0
    # ...the base's code, with the head only as data, does not, whatever PYTHONPATH says.
    judged = _report(project, "pr-code", "--judge-from-base", env=head_code)
    run(["git", "checkout", "-q", "main"], project)
    assert judged.returncode == 17, judged.stderr
    assert "## Champion / challenger gate: **FAIL**" in judged.stdout
    assert "ROC AUC worse by more than 0.01" in judged.stdout
    assert "Policy changed" not in judged.stdout
    assert "Judged under the base's gate policy" in judged.stdout
    # From a checkout of the base, too.
    assert _report(project, "pr-code", "--judge-from-base").returncode == 17


def test_a_head_that_redefines_the_test_rows_is_judged_on_the_base_split(project, tmp_path):
    run(["git", "checkout", "-q", "-b", "pr-split", "main"], project)
    # Loose margins too, so that the head's own gate releases its model.
    loose = {"gate.auc_margin": 0.5, "gate.cost_margin_per_1000": 1e6}
    _set(project, {"split.test_size": 0.25, **loose})
    assert _release_on_branch(project, "pr-split") == "PASS"
    own = json.loads((project / "reports" / "gate.json").read_text())
    run(["git", "checkout", "-q", "main"], project)
    assert own["n_test"] == ROWS // 4

    record = tmp_path / "verdict.json"
    judged = _report(project, "pr-split", "--judge-from-base", "--verdict-json", str(record))
    verdict = json.loads(record.read_text())
    assert judged.returncode == verdict["exit_code"]
    assert judged.returncode in (17, 18, 33)  # never 0: the policy changed
    assert verdict["changed_keys"] == [*sorted(loose), "split.test_size"]
    assert verdict["test_rows"] == "base_split"
    # The base's test rows: the latest 20% of the head's data, not the head's 25%.
    assert verdict["gate"]["n_test"] == ROWS // 5
    assert "its data was split again under the base's split settings" in judged.stdout
