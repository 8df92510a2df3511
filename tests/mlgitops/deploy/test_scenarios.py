"""End-to-end deploy scenarios through the real CLI against the fake API server."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlgitops.release import ANNOTATION_GIT_COMMIT, ANNOTATION_MODEL_HASH
from tests.mlgitops.deploy.helpers import (
    DEPLOYMENT,
    STAGING_NS,
    GitOpsRepo,
    deployed_image,
    deployed_tag,
    deployment,
    history_entries,
    release_for,
    running_digests,
    running_images,
    running_tags,
)
from tests.support.fake_kube import FakeKubeServer

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(120)]

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def test_first_deploy(cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo) -> None:
    commit = gitops_repo.commit_model("A")
    a = release_for("A")

    result = cli("deploy", "--env", "staging", "--timeout", "30")

    assert result.code == 0, result.err
    assert f"deployed {commit[:12]} to staging" in result.out
    live = deployment(cluster)
    annotations = live["spec"]["template"]["metadata"]["annotations"]
    assert annotations[ANNOTATION_GIT_COMMIT] == commit
    assert annotations[ANNOTATION_MODEL_HASH] == a.model_hash
    assert deployed_image(cluster) == a.image
    assert running_images(cluster) == {a.image}
    # Every rendered object is there, owned by the `mlgitops` field manager through Apply.
    for resource in ("services", "serviceaccounts", "horizontalpodautoscalers",
                     "poddisruptionbudgets", "networkpolicies"):  # fmt: skip
        obj = cluster.get_object(resource, DEPLOYMENT, STAGING_NS)
        assert obj is not None, resource
    managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
    assert ("mlgitops", "Apply") in managers
    [entry] = history_entries(cluster)
    assert entry["seq"] == 1
    assert (entry["kind"], entry["outcome"]) == ("deploy", "succeeded")
    assert (entry["commit"], entry["image"], entry["model_hash"]) == (commit, a.image, a.model_hash)
    assert entry["started_at"]
    assert entry["finished_at"]
    # The lock is released.
    assert cluster.get_object("leases", f"mlgitops-deploy-{DEPLOYMENT}", STAGING_NS) is None


def test_deploy_of_a_newly_trained_model(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    commit_b = gitops_repo.commit_model("B")
    b = release_for("B")

    result = cli("deploy", "--env", "staging")

    assert result.code == 0, result.err
    assert deployed_image(cluster) == b.image
    assert running_images(cluster) == {b.image}
    pods = cluster.list_objects("pods", STAGING_NS)
    ready_models = {
        p["metadata"]["annotations"][ANNOTATION_MODEL_HASH]
        for p in pods
        if p["spec"]["containers"][0]["image"] == b.image
    }
    assert ready_models == {b.model_hash}
    entries = history_entries(cluster)
    assert [(e["seq"], e["commit"], e["outcome"]) for e in entries][-1] == (
        2,
        commit_b,
        "succeeded",
    )


def test_failed_rollout_rolls_back_automatically(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    commit_b = gitops_repo.commit_model("B")
    assert cli("deploy", "--env", "staging").code == 0
    commit_c = gitops_repo.commit_model("C")
    b, c = release_for("B"), release_for("C")
    cluster.fail_image(c.image)

    result = cli("deploy", "--env", "staging", "--timeout", "30")

    assert result.code == 10, result.out + result.err
    assert f"rollout of {commit_c[:12]}" in result.err
    assert "CrashLoopBackOff" in result.err
    assert f"rolled back to #2 ({commit_b[:12]}" in result.err
    entries = history_entries(cluster)
    # The rollback restores the bytes #2 ran (the registry could not be asked: the digest the
    # pods reported then), pinned.
    b_digest = entries[1]["image_digest"]
    assert entries[1]["digest_source"] == "pods"
    assert deployed_image(cluster) == f"{b.image}@{b_digest}"
    assert running_images(cluster) == {f"{b.image}@{b_digest}"}
    assert running_digests(cluster) == {b_digest}
    failed, rolled_back = entries[-2], entries[-1]
    assert (failed["kind"], failed["outcome"], failed["commit"]) == ("deploy", "failed", commit_c)
    assert "CrashLoopBackOff" in failed["message"]
    assert (rolled_back["kind"], rolled_back["outcome"]) == ("auto-rollback", "succeeded")
    assert (rolled_back["commit"], rolled_back["rollback_of"]) == (commit_b, 2)
    assert (rolled_back["image_digest"], rolled_back["digest_source"]) == (b_digest, "history")
    assert cluster.get_object("leases", f"mlgitops-deploy-{DEPLOYMENT}", STAGING_NS) is None


def test_progress_deadline_exceeded_rolls_back(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    """With crash loops tolerated, the Deployment's own progress deadline is what fails it."""
    from mlgitops.deploy.deploy import Settings, deploy
    from mlgitops.errors import RolloutFailedError

    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    gitops_repo.commit_model("B")
    cluster.fail_image(release_for("B").image)
    settings = Settings(
        allow_unverified=True,  # unsigned fixture releases
        repo=gitops_repo.path,
        kubeconfig=cluster.kubeconfig_path,
        timeout=60,
        crashloop_restarts=10_000,
    )

    with pytest.raises(RolloutFailedError, match="ProgressDeadlineExceeded") as failure:
        deploy("staging", settings=settings)

    assert "rolled back to #1" in str(failure.value)
    assert deployed_tag(cluster) == release_for("A").image
    assert history_entries(cluster)[-2]["message"].startswith("ProgressDeadlineExceeded")


def test_a_progress_deadline_rollback_to_the_old_replicaset_is_reported_as_succeeded(
    cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    """One replica: the rollback re-uses A's ReplicaSet, still available, while the controller
    keeps the stale ProgressDeadlineExceeded (naming B's ReplicaSet) until the old pod is gone."""
    from mlgitops.deploy.deploy import Settings, deploy
    from mlgitops.errors import RolloutFailedError

    commit_a = gitops_repo.commit_model("A")
    settings = Settings(
        allow_unverified=True,  # unsigned fixture releases
        repo=gitops_repo.path,
        kubeconfig=cluster.kubeconfig_path,
        timeout=60,
        crashloop_restarts=10_000,
    )
    deploy("staging", settings=settings)
    gitops_repo.commit_model("B")
    cluster.fail_image(release_for("B").image)
    cluster.scale_down_delay = 1.0  # a ReplicaSet controller as slow as a busy real one

    with pytest.raises(RolloutFailedError, match="ProgressDeadlineExceeded") as failure:
        deploy("staging", settings=settings)

    assert f"rolled back to #1 ({commit_a[:12]}" in str(failure.value)
    assert "also failed" not in str(failure.value)
    assert deployment(cluster)["spec"]["replicas"] == 1
    assert deployed_tag(cluster) == release_for("A").image
    assert running_tags(cluster) == {release_for("A").image}
    outcomes = [(e["kind"], e["outcome"]) for e in history_entries(cluster)]
    assert outcomes == [
        ("deploy", "succeeded"),
        ("deploy", "failed"),
        ("auto-rollback", "succeeded"),
    ]


def test_git_revert_redeploys_the_previous_image_without_building(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    commit_b = gitops_repo.commit_model("B")
    assert cli("deploy", "--env", "staging").code == 0
    a = release_for("A")

    # Building is impossible from here on: the image and bento modules cannot be imported and
    # every process the deploy starts is recorded.
    for name in [m for m in sys.modules if m.startswith(("mlgitops.image", "bentoml"))]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("mlgitops.image", "bentoml"):
        monkeypatch.setitem(sys.modules, name, None)
    commands: list[list[str]] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            commands.append([str(a) for a in args] if isinstance(args, list | tuple) else [args])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)

    revert = gitops_repo.revert(commit_b)
    result = cli("deploy", "--env", "staging")

    assert result.code == 0, result.err
    assert deployed_image(cluster) == a.image
    assert running_images(cluster) == {a.image}
    annotations = deployment(cluster)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[ANNOTATION_GIT_COMMIT] == revert
    assert annotations[ANNOTATION_MODEL_HASH] == a.model_hash
    programs = {cmd[0].rsplit("/", 1)[-1] for cmd in commands}
    assert programs <= {"git", "kubectl"}, commands
    assert not programs & {"buildah", "bentoml", "podman", "docker", "dvc"}
    assert history_entries(cluster)[-1]["commit"] == revert


def test_rollback_command(cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo) -> None:
    commit_a = gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    commit_b = gitops_repo.commit_model("B")
    assert cli("deploy", "--env", "staging").code == 0

    result = cli("rollback", "--env", "staging")

    assert result.code == 0, result.err
    assert "rolled staging back to #1" in result.out
    first = history_entries(cluster)[0]
    assert deployed_image(cluster) == f"{release_for('A').image}@{first['image_digest']}"
    entry = history_entries(cluster)[-1]
    assert (entry["kind"], entry["commit"], entry["rollback_of"]) == ("rollback", commit_a, 1)
    assert entry["image_digest"] == first["image_digest"]

    result = cli("rollback", "--env", "staging", "--to", "2")

    assert result.code == 0, result.err
    assert deployed_tag(cluster) == release_for("B").image
    assert history_entries(cluster)[-1]["commit"] == commit_b

    result = cli("rollback", "--env", "staging", "--to", "99")
    assert result.code == 9
    assert "no history entry #99" in result.err


def test_dry_run_changes_nothing(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    gitops_repo.commit_model("B")
    a, b = release_for("A"), release_for("B")
    before = {
        kind: cluster.list_objects(kind, STAGING_NS)
        for kind in ("deployments", "configmaps", "leases", "services")
    }
    writes_before = len(cluster.requests)

    result = cli("deploy", "--env", "staging", "--dry-run")

    assert result.code == 0, result.err
    assert re.search(rf"^-\s+image: {re.escape(a.image)}$", result.out, re.MULTILINE)
    assert re.search(rf"^\+\s+image: {re.escape(b.image)}$", result.out, re.MULTILINE)
    assert "desired/mlgitops-staging/Deployment/fraud-detector" in result.out
    # Unchanged objects produce no diff.
    assert "Service/fraud-detector" not in result.out
    writes = [
        r for r in cluster.requests[writes_before:]
        if r.verb in WRITE_VERBS and r.query.get("dryRun") != "All"
    ]  # fmt: skip
    assert writes == []
    after = {kind: cluster.list_objects(kind, STAGING_NS) for kind in before}
    for kind in ("configmaps", "leases", "services"):
        assert after[kind] == before[kind], kind
    assert deployed_image(cluster) == a.image
    assert len(history_entries(cluster)) == 1


def test_dry_run_of_a_first_deploy_shows_every_object(cli: Any, gitops_repo: GitOpsRepo) -> None:
    gitops_repo.commit_model("A")
    result = cli("deploy", "--env", "production", "--dry-run")
    assert result.code == 0, result.err
    for kind in ("ServiceAccount", "Service", "Deployment", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget", "NetworkPolicy"):  # fmt: skip
        assert f"desired/mlgitops-production/{kind}/fraud-detector" in result.out


def test_concurrent_deploy_is_refused(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    from mlgitops.deploy.kube import Kube
    from mlgitops.deploy.lock import DeployLock

    gitops_repo.commit_model("A")
    kube = Kube.connect(cluster.kubeconfig_path)
    holder = DeployLock(kube, STAGING_NS, DEPLOYMENT, identity="alice@ci-runner/pid-42")
    holder.acquire()
    try:
        result = cli("deploy", "--env", "staging", "--lock-wait", "0")
        assert result.code == 11, result.err
        assert "held by alice@ci-runner/pid-42 since 20" in result.err
        # Nothing was applied or recorded.
        assert cluster.get_object("deployments", DEPLOYMENT, STAGING_NS) is None
        assert history_entries(cluster) == []
    finally:
        holder.release()
        kube.close()

    assert cli("deploy", "--env", "staging").code == 0


def test_a_deploy_running_in_parallel_blocks_the_second(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    """Two real deploys overlap: the second is refused and the first completes untouched."""
    from mlgitops.deploy.deploy import Settings, deploy

    gitops_repo.commit_model("A")
    a = release_for("A")
    cluster.fail_image(a.image)  # the first deploy's pods stay unready until healed
    settings = Settings(
        allow_unverified=True,  # unsigned fixture releases
        repo=gitops_repo.path,
        kubeconfig=cluster.kubeconfig_path,
        timeout=60,
        crashloop_restarts=10_000,
        identity="first-deploy",
    )
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            outcome["report"] = deploy("staging", settings=settings)
        except Exception as error:  # reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=first)
    thread.start()
    cluster.wait_for(
        lambda: cluster.get_object("deployments", DEPLOYMENT, STAGING_NS) is not None, timeout=20
    )

    second = cli("deploy", "--env", "staging", "--lock-wait", "0")

    assert second.code == 11
    assert "held by first-deploy" in second.err
    cluster.heal_images()
    thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].entry.outcome == "succeeded"
    assert [e["deployed_by"] for e in history_entries(cluster)] == ["first-deploy"]


def test_an_expired_lease_is_taken_over(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    """A crashed deploy's lease: its renewTime is an hour old, which proves nothing (another
    machine's clock); the deploy watches it and takes it after one lease duration (here 1 s)
    without a change."""
    gitops_repo.commit_model("A")
    stale = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cluster.put_object(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": f"mlgitops-deploy-{DEPLOYMENT}", "namespace": STAGING_NS},
            "spec": {
                "holderIdentity": "crashed@somewhere",
                "leaseDurationSeconds": 1,
                "acquireTime": stale,
                "renewTime": stale,
            },
        }
    )

    refused = cli("deploy", "--env", "staging", "--lock-wait", "0")
    assert refused.code == 11
    assert "held by crashed@somewhere" in refused.err
    assert "no renewal seen in 0 s, but it expires only after 1 s" in refused.err

    result = cli("deploy", "--env", "staging", "--lock-wait", "10")
    assert result.code == 0, result.err
    assert "took over lease mlgitops-deploy-fraud-detector from crashed@somewhere" in result.err
    assert cluster.get_object("leases", f"mlgitops-deploy-{DEPLOYMENT}", STAGING_NS) is None


def test_history_command(cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo) -> None:
    import json

    empty = cli("history", "--env", "staging")
    assert empty.code == 0
    assert "no deploys recorded" in empty.out
    commit = gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0

    table = cli("history", "--env", "staging")
    assert table.code == 0, table.err
    assert commit[:12] in table.out
    assert "succeeded" in table.out

    lines = cli("history", "--env", "staging", "--json").out.splitlines()
    assert [json.loads(line)["commit"] for line in lines] == [commit]


def test_unknown_environment_lists_the_available_ones(cli: Any, gitops_repo: GitOpsRepo) -> None:
    gitops_repo.commit_model("A")
    result = cli("deploy", "--env", "prod")
    assert result.code == 9
    assert "unknown environment 'prod'" in result.err
    assert "available: production, staging" in result.err


def test_unknown_revision_is_a_git_error(cli: Any, gitops_repo: GitOpsRepo) -> None:
    result = cli("deploy", "--env", "staging", "--rev", "no-such-branch")
    assert result.code == 12
    assert "no-such-branch" in result.err


def test_missing_namespace_explains_the_bootstrap(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    cluster.delete_object("namespaces", "mlgitops-staging", "")
    result = cli("deploy", "--env", "staging")
    assert result.code == 9
    assert "kubectl apply --server-side -k k8s/bootstrap/staging" in result.err


def test_deploy_renders_from_git_not_the_working_tree(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    gitops_repo.commit_model("B")
    # Uncommitted edits and an older --rev: neither leaks into the other, the tree is untouched.
    (gitops_repo.path / "release.json").write_text("not json")
    status = gitops_repo.git("status", "--porcelain")

    result = cli("deploy", "--env", "staging", "--rev", "HEAD~1")

    assert result.code == 0, result.err
    assert deployed_image(cluster) == release_for("A").image
    assert gitops_repo.git("status", "--porcelain") == status


def test_a_failed_first_deploy_has_nothing_to_roll_back_to(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    cluster.fail_image(release_for("A").image)

    result = cli("deploy", "--env", "staging")

    assert result.code == 10
    assert "no earlier successful deploy to roll back to" in result.err
    [entry] = history_entries(cluster)
    assert entry["outcome"] == "failed"


def test_a_failed_automatic_rollback_says_so(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    gitops_repo.commit_model("B")
    # The registry lost A meanwhile: the rollback target cannot start either.
    cluster.fail_image(release_for("A").image)
    cluster.fail_image(release_for("B").image)

    result = cli("deploy", "--env", "staging")

    assert result.code == 10
    assert "the automatic rollback to #1" in result.err
    assert "also failed" in result.err
    outcomes = [(e["kind"], e["outcome"]) for e in history_entries(cluster)]
    assert outcomes == [("deploy", "succeeded"), ("deploy", "failed"), ("auto-rollback", "failed")]
    assert cluster.get_object("leases", f"mlgitops-deploy-{DEPLOYMENT}", STAGING_NS) is None


def test_an_apply_failing_midway_is_rolled_back_not_left_half_applied(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlgitops.deploy.kube import Kube, KubeError

    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    gitops_repo.commit_model("B")
    real_apply = Kube.apply
    failures = {"left": 1}

    def flaky_apply(self: Kube, obj: dict[str, Any], *, dry_run: bool = False, **kw: Any) -> Any:
        # The HPA comes after the Deployment: B's Deployment is already written when this fails.
        if obj["kind"] == "HorizontalPodAutoscaler" and not dry_run and failures["left"]:
            failures["left"] -= 1
            raise KubeError("etcdserver: request timed out (HTTP 500)", 500)
        return real_apply(self, obj, dry_run=dry_run, **kw)

    monkeypatch.setattr(Kube, "apply", flaky_apply)

    result = cli("deploy", "--env", "staging")

    assert result.code == 10
    assert "ApplyFailed" in result.err
    assert "rolled back to #1" in result.err
    assert deployed_tag(cluster) == release_for("A").image
    assert running_tags(cluster) == {release_for("A").image}


def test_an_invalid_release_record_stops_the_deploy_before_any_write(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    (gitops_repo.path / "release.json").write_text('{"bento_name": "fraud-detector"}\n')
    gitops_repo.git("commit", "-q", "-am", "a broken release record")
    commit = gitops_repo.git("rev-parse", "HEAD")

    result = cli("deploy", "--env", "staging")

    assert result.code == 5, result.err
    assert f"{commit[:12]}:release.json: not a valid release record" in result.err
    assert cluster.get_object("deployments", DEPLOYMENT, STAGING_NS) is None


@pytest.mark.parametrize("command", ["deploy", "history", "rollback"])
def test_a_repo_that_is_no_git_repository_says_so(
    command: str, cluster: FakeKubeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlgitops.cli.main import main

    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    code = main([command, "--env", "staging", "--repo", str(plain),
                 "--kubeconfig", str(cluster.kubeconfig_path)])  # fmt: skip
    assert code == 12
    assert capsys.readouterr().err.strip() == f"error: {plain}: not a Git repository"
