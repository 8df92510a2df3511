"""Deploys that are stopped, stalled or killed: what they leave behind.

The subprocess tests run the real `mlgitops deploy` as a user's shell or CI would, against the
fake API server of the test process, and signal it mid-rollout (its pods are kept from getting
ready with a long `ready_delay`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from mlgitops.deploy.deploy import Settings, deploy
from mlgitops.deploy.rollout import RolloutFailure, RolloutWatcher
from mlgitops.errors import DeployLeaseLostError
from tests.mlgitops.deploy.helpers import (
    DEPLOYMENT,
    STAGING_NS,
    GitOpsRepo,
    Timeline,
    deployed_tag,
    history_entries,
    release_for,
    running_tags,
)
from tests.support.fake_kube import FakeKubeServer

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(120)]

LEASE = f"mlgitops-deploy-{DEPLOYMENT}"
WRITES = ("create", "update", "patch", "delete")


def spawn_deploy(repo: GitOpsRepo, fake: FakeKubeServer, *args: str) -> subprocess.Popen[str]:
    where = ["--repo", str(repo.path), "--kubeconfig", str(fake.kubeconfig_path)]
    where.append("--allow-unverified")  # unsigned fixture releases
    command = [sys.executable, "-m", "mlgitops", "deploy", "--env", "staging", *where, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_polling(fake: FakeKubeServer, pod_lists_before: int) -> None:
    """Until the deploy has applied and polls its rollout (it lists the pods)."""
    fake.wait_for(lambda: fake.count_requests("list", "pods") > pod_lists_before, timeout=60)


def lease(fake: FakeKubeServer) -> dict[str, Any] | None:
    return fake.get_object("leases", LEASE, STAGING_NS)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_rollout_releases_the_lease_and_records_the_attempt(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo, signum: signal.Signals
) -> None:
    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    commit_b = gitops_repo.commit_model("B")
    cluster.ready_delay = 600  # B's pods stay ContainerCreating: the deploy waits
    lists = cluster.count_requests("list", "pods")
    process = spawn_deploy(gitops_repo, cluster)
    wait_until_polling(cluster, lists)
    assert lease(cluster) is not None

    process.send_signal(signum)
    _, err = process.communicate(timeout=30)

    print("SIG-ERR:", _, err)
    assert process.returncode == 128 + signum
    assert lease(cluster) is None  # released at once, not after the lease duration
    last = history_entries(cluster)[-1]
    assert (last["seq"], last["commit"], last["kind"]) == (2, commit_b, "deploy")
    assert last["outcome"] == "interrupted"
    assert last["message"] == f"{signum.name} while waiting for the rollout"
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(
        f"error: the deploy of HEAD to staging interrupted by {signum.name}: recorded as #2 "
        "interrupted, lease released"
    )
    cluster.ready_delay = 0.2
    again = cli("deploy", "--env", "staging", "--lock-wait", "0")  # no wait for an expiry
    assert again.code == 0, again.err
    assert history_entries(cluster)[-1]["outcome"] == "succeeded"


def test_a_signal_while_waiting_for_the_lock_records_nothing(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    from mlgitops.deploy.kube import Kube
    from mlgitops.deploy.lock import DeployLock

    gitops_repo.commit_model("A")
    kube = Kube.connect(cluster.kubeconfig_path)
    holder = DeployLock(kube, STAGING_NS, DEPLOYMENT, identity="holder")
    holder.acquire()
    try:
        gets = cluster.count_requests("get", "leases")
        process = spawn_deploy(gitops_repo, cluster, "--lock-wait", "60")
        cluster.wait_for(lambda: cluster.count_requests("get", "leases") > gets, timeout=60)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 143
        assert "interrupted by SIGTERM: nothing was applied or recorded" in err
        assert lease(cluster)["spec"]["holderIdentity"] == "holder"
        assert history_entries(cluster) == []
    finally:
        holder.release()
        kube.close()


def test_a_stopped_deploy_that_lost_its_lease_does_not_roll_back_over_the_next(
    cli: Any, cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    """The race of the security review, end to end: deploy B is stopped (SIGSTOP) mid-rollout
    past its lease; deploy C watches B's lease go silent, takes it, deploys and records C; B
    resumes (SIGCONT), finds its lease lost and stops without writing: C stays."""
    gitops_repo.commit_model("A")
    assert cli("deploy", "--env", "staging").code == 0
    gitops_repo.commit_model("B")
    cluster.ready_delay = 600
    lists = cluster.count_requests("list", "pods")
    b = spawn_deploy(gitops_repo, cluster, "--lease-duration", "3")
    try:
        wait_until_polling(cluster, lists)
        holder_b = lease(cluster)["spec"]["holderIdentity"]
        os.kill(b.pid, signal.SIGSTOP)
        cluster.ready_delay = 0.2
        commit_c = gitops_repo.commit_model("C")

        c = cli("deploy", "--env", "staging", "--lock-wait", "30")

        assert c.code == 0, c.err
        assert f"took over lease {LEASE} from {holder_b}: no renewal seen for 3 s" in c.err
    finally:
        os.kill(b.pid, signal.SIGCONT)
    _, err = b.communicate(timeout=30)

    print("B-ERR:", err)
    print("C-ERR:", c.err)
    assert b.returncode == 31, err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: lease {LEASE} not renewed for ")
    assert "stopped before" in line
    assert "recorded nothing" in line
    entries = history_entries(cluster)
    assert [(e["commit"], e["outcome"]) for e in entries][1:] == [(commit_c, "succeeded")]
    assert deployed_tag(cluster) == release_for("C").image
    assert running_tags(cluster) == {release_for("C").image}
    assert lease(cluster) is None


def _stalling_deploy(
    cluster: FakeKubeServer, gitops_repo: GitOpsRepo, timeline: Timeline
) -> dict[str, Any]:
    settings = Settings(
        allow_unverified=True,  # unsigned fixture releases
        repo=gitops_repo.path,
        kubeconfig=cluster.kubeconfig_path,
        timeout=60,
        identity="stalling",
        clocks=timeline.clocks(),
    )
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["report"] = deploy("staging", settings=settings)
        except Exception as error:  # asserted by the caller
            outcome["error"] = error

    outcome["thread"] = threading.Thread(target=run)
    outcome["thread"].start()
    return outcome


def test_a_deploy_stalled_past_its_lease_writes_nothing_more(
    cluster: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    """The deployer's own monotonic clock jumps 45 s (a stall: the process was not scheduled)
    while it waits for its rollout: past the 40 s renew deadline of its 60 s lease."""
    gitops_repo.commit_model("A")
    deploy(
        "staging",
        settings=Settings(
            repo=gitops_repo.path, kubeconfig=cluster.kubeconfig_path, allow_unverified=True
        ),
    )
    gitops_repo.commit_model("B")
    cluster.ready_delay = 600
    timeline = Timeline()
    lists = cluster.count_requests("list", "pods")
    outcome = _stalling_deploy(cluster, gitops_repo, timeline)
    wait_until_polling(cluster, lists)
    writes = len([r for r in cluster.requests if r.verb in WRITES])

    timeline.advance(45)
    outcome["thread"].join(timeout=30)

    error = outcome.get("error")
    assert isinstance(error, DeployLeaseLostError), error
    assert "not renewed for 45 s" in str(error)
    assert "stopped before waiting for the rollout and recorded nothing" in str(error)
    after = [r for r in cluster.requests if r.verb in WRITES][writes:]
    # Only its own, unchanged lease is deleted (nobody took it): no apply, no history write.
    assert [(r.verb, r.resource) for r in after] == [("delete", "leases")]
    assert [e["outcome"] for e in history_entries(cluster)] == ["succeeded"]


def test_a_failure_seen_after_the_lease_lapsed_is_neither_recorded_nor_rolled_back(
    cluster: FakeKubeServer, gitops_repo: GitOpsRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollout fails just as the lease lapses (another deploy may own the environment now):
    no failed entry, no rollback over whatever runs there."""
    gitops_repo.commit_model("A")
    deploy(
        "staging",
        settings=Settings(
            repo=gitops_repo.path, kubeconfig=cluster.kubeconfig_path, allow_unverified=True
        ),
    )
    gitops_repo.commit_model("B")
    timeline = Timeline()

    def fails_after_a_stall(self: RolloutWatcher, timeout: float) -> Any:
        timeline.advance(61)
        raise RolloutFailure("CrashLoopBackOff", "pod fraud-detector-x: CrashLoopBackOff")

    monkeypatch.setattr(RolloutWatcher, "wait", fails_after_a_stall)
    outcome = _stalling_deploy(cluster, gitops_repo, timeline)
    outcome["thread"].join(timeout=30)

    error = outcome.get("error")
    assert isinstance(error, DeployLeaseLostError), error
    assert "stopped before recording the failed deploy" in str(error)
    assert [e["outcome"] for e in history_entries(cluster)] == ["succeeded"]
    assert deployed_tag(cluster) == release_for("B").image  # not rolled back to A
