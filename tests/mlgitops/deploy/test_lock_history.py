"""The Lease lock and the history ConfigMap against the fake API server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from mlgitops.deploy.history import History
from mlgitops.deploy.kube import Kube
from mlgitops.deploy.lock import DeployLock, parse_time
from mlgitops.errors import DeployLockedError
from tests.mlgitops.deploy.test_units import entry
from tests.support.fake_kube import FakeKubeServer

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(60)]

NS = "mlgitops-staging"


@pytest.fixture
def kube(cluster: FakeKubeServer) -> Iterator[Kube]:
    client = Kube.connect(cluster.kubeconfig_path)
    yield client
    client.close()


def lease(fake: FakeKubeServer) -> dict[str, Any] | None:
    return fake.get_object("leases", "mlgitops-deploy-web", NS)


def test_lock_is_exclusive_renewed_and_released(kube: Kube, cluster: FakeKubeServer) -> None:
    first = DeployLock(kube, NS, "web", identity="first", duration_s=1)
    with first:
        held = lease(cluster)
        assert held is not None
        assert held["spec"]["holderIdentity"] == "first"
        with pytest.raises(DeployLockedError, match="held by first since"):
            DeployLock(kube, NS, "web", identity="second").acquire()
        renewed = held["spec"]["renewTime"]
        # Renewed every duration/3, so an in-progress deploy never looks expired.
        cluster.wait_for(lambda: lease(cluster)["spec"]["renewTime"] != renewed, timeout=5)
        time.sleep(1.2)
        with pytest.raises(DeployLockedError):
            DeployLock(kube, NS, "web", identity="second").acquire()
    assert lease(cluster) is None
    assert first.lost is None
    with DeployLock(kube, NS, "web", identity="second"):
        assert lease(cluster)["spec"]["holderIdentity"] == "second"


def test_a_lock_taken_over_after_expiry_is_reported_lost(
    kube: Kube, cluster: FakeKubeServer
) -> None:
    stale = DeployLock(kube, NS, "web", identity="stale", duration_s=1, renew=False)
    stale.acquire()
    time.sleep(1.1)  # not renewed: expired
    with DeployLock(kube, NS, "web", identity="new") as new:
        current = lease(cluster)
        assert current["spec"]["holderIdentity"] == "new"
        assert current["spec"]["leaseTransitions"] == 1
        assert parse_time(current["spec"]["acquireTime"]) is not None
        with pytest.raises(Exception, match="lost the deploy lease"):
            stale.renew()
        stale.release()  # must not delete the new holder's lease
        assert lease(cluster)["spec"]["holderIdentity"] == "new"
        assert new.lost is None


def test_history_appends_survive_a_concurrent_writer(kube: Kube, cluster: FakeKubeServer) -> None:
    mine, theirs = History(kube, NS, "web"), History(kube, NS, "web")
    mine.append(entry("a", "A"))
    real_get = mine._get
    calls = {"n": 0}

    def get_then_race() -> dict[str, Any] | None:
        snapshot = real_get()
        calls["n"] += 1
        if calls["n"] == 1:
            theirs.append(entry("b", "B"))  # lands between our read and our write
        return snapshot

    mine._get = get_then_race  # type: ignore[method-assign]
    stored = mine.append(entry("c", "C"))

    assert calls["n"] == 2  # the first write hit 409 and was retried on fresh data
    assert stored.seq == 3
    assert [(e.seq, e.commit) for e in theirs.entries()] == [(1, "a"), (2, "b"), (3, "c")]
