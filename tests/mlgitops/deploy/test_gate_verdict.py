"""`mlgitops deploy` refuses a revision whose committed gate verdict did not pass its release
(src/mlgitops/verdict.py), against the fake API server: one line, exit 28, no request that
writes, and the running release stays. Revisions older than the gate record deploy as before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlgitops.errors import ReleaseNotPassedError
from tests.mlgitops.deploy.helpers import (
    GitOpsRepo,
    deployed_image,
    history_entries,
    release_for,
    running_images,
)
from tests.support.fake_kube import FakeKubeServer

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(120)]

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def _commit_verdict(repo: GitOpsRepo, verdict: str, model: str) -> str:
    """Commit reports/gate.json as the gate stage writes it, about `model`'s hash."""
    record = {
        "verdict": verdict,
        "reason": "ROC AUC undecided (interval [-0.02, +0.004] contains -0.01; MDE 0.011)",
        "base": "HEAD",
        "challenger_model_hash": release_for(model).model_hash,
    }
    path = repo.path / "reports" / "gate.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    repo.git("add", "reports/gate.json")
    repo.git("commit", "-q", "-m", f"gate {verdict} for model {model}")
    return repo.git("rev-parse", "HEAD")


def _writes(cluster: FakeKubeServer, since: int) -> list[Any]:
    return [
        r for r in cluster.requests[since:]
        if r.verb in WRITE_VERBS and r.query.get("dryRun") != "All"
    ]  # fmt: skip


@pytest.mark.parametrize("verdict", ["INCONCLUSIVE", "FAIL"])
def test_deploy_refuses_a_committed_experiment_that_lost(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, verdict: str
) -> None:
    a = release_for("A")
    gitops_repo.commit_model("A")
    _commit_verdict(gitops_repo, "PASS", "A")
    assert cli("deploy", "--env", "staging").code == 0
    # `dvc exp run` of a model B that lost, committed: release.json still names A.
    commit = _commit_verdict(gitops_repo, verdict, "B")
    requests_before = len(cluster.requests)

    for args in (("deploy", "--env", "staging"), ("deploy", "--env", "staging", "--dry-run")):
        result = cli(*args)
        assert result.code == ReleaseNotPassedError.exit_code == 28, result.err
        [line] = result.err.strip().splitlines()
        assert line == (
            f"error: HEAD ({commit[:12]}) is not a release: its gate verdict is {verdict} "
            f"(reports/gate.json) for model {release_for('B').model_hash[:19]}, which its "
            f"release does not pin; its release record still names {a.bento_tag}"
        )
        assert result.out == ""

    assert _writes(cluster, requests_before) == []
    assert deployed_image(cluster) == a.image
    assert running_images(cluster) == {a.image}
    assert len(history_entries(cluster)) == 1


def test_deploy_refuses_a_pass_about_another_model_than_the_release(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    _commit_verdict(gitops_repo, "PASS", "B")
    result = cli("deploy", "--env", "staging")
    assert result.code == 28
    assert "reports/gate.json passed model" in result.err
    assert "but its release pins" in result.err
    assert history_entries(cluster) == []


def test_a_release_its_gate_passed_deploys_and_older_revisions_without_a_record_too(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    # Before the gate record existed: no reports/gate.json, deployed as before.
    old = gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    gitops_repo.commit_model("B")
    _commit_verdict(gitops_repo, "PASS", "B")
    result = cli("deploy", "--env", "staging")
    assert result.code == 0, result.err
    assert deployed_image(cluster) == release_for("B").image
    # And back to the revision older than the record, by revision.
    assert cli("deploy", "--env", "staging", "--rev", old).code == 0
    assert deployed_image(cluster) == release_for("A").image
