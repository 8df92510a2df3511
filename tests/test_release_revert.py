"""`git revert` of a release commit restores the release's monitoring with its model: the score
reference and the alert rules are Git-tracked outputs, shipped in the bento it names."""

from __future__ import annotations

import pytest
import yaml

from tests.support.project import released_project, run

MONITORING_FILES = (
    "artifacts/monitoring/score_reference.json",
    "k8s/monitoring/rules.yaml",
    "k8s/monitoring/prometheusrule.yaml",
    "metrics/calibration.json",
    "release.json",
)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_git_revert_of_a_release_restores_the_previous_rules_and_reference(tmp_path) -> None:
    root = released_project(tmp_path / "repo").root
    env = {"BENTOML_HOME": str(tmp_path / "bentoml")}
    first = {name: (root / name).read_bytes() for name in MONITORING_FILES}

    # A cheaper false alarm moves the threshold: a new reference, new rules, a new bento.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["threshold"]["false_positive_cost"] = 1.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], root, env=env)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "release 2: cheaper reviews"], root)
    second = {name: (root / name).read_bytes() for name in MONITORING_FILES}
    # Everything but the calibration, which depends on the model only.
    changed = {name for name in MONITORING_FILES if second[name] != first[name]}
    assert changed == set(MONITORING_FILES) - {"metrics/calibration.json"}

    # `mlgitops revert` prepares the same revert as a branch, main and the tree untouched.
    main_before = run(["git", "rev-parse", "main"], root).stdout
    status_before = run(["git", "status", "--porcelain"], root).stdout
    made = run(["mlgitops", "revert", "--pr-body", str(tmp_path / "pr.md")], root, env=env)
    branch = made.stderr.split("created branch ", 1)[1].split(":", 1)[0]
    for name in MONITORING_FILES:
        blob = run(["git", "cat-file", "blob", f"{branch}:{name}"], root).stdout.encode()
        assert blob == first[name], name
    assert run(["git", "rev-parse", "main"], root).stdout == main_before
    assert run(["git", "status", "--porcelain"], root).stdout == status_before

    run(["git", "revert", "--no-edit", "HEAD"], root)
    assert {name: (root / name).read_bytes() for name in MONITORING_FILES} == first
    # The cached outputs come back with `dvc checkout`, and nothing is stale.
    run(["dvc", "checkout", "-q"], root, env=env)
    assert "up to date" in run(["dvc", "status"], root, env=env).stdout
