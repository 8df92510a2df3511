"""The Lease lock and the history ConfigMap against the fake API server.

The lock's clocks are injected: one monotonic timeline shared by the deployers of a test (time
passes only when a deployer waits, or when the test says so) and a wall clock per deployer, so
skew is a number and nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mlgitops.deploy.history import History
from mlgitops.deploy.kube import Kube, KubeError
from mlgitops.deploy.lock import Clocks, DeployLock, parse_time
from mlgitops.errors import DeployLeaseLostError, DeployLockedError
from tests.mlgitops.deploy.helpers import Timeline
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


def lock(kube: Kube, identity: str, clocks: Clocks, **kw: Any) -> DeployLock:
    return DeployLock(kube, NS, "web", identity=identity, clocks=clocks, renew=False, **kw)


def renewing(holder: DeployLock, timeline: Timeline) -> Callable[[float], None]:
    """The holder's renew thread, on the shared timeline: a renewal every third of its lease."""
    last = {"at": timeline.now}

    def hook(now: float) -> None:
        if now - last["at"] >= holder.renew_interval:
            assert holder.renew()
            last["at"] = now

    return hook


@pytest.mark.parametrize(
    ("holder_skew", "taker_skew"),
    [(0, 120), (0, -120), (120, 0), (-120, 0)],
    ids=["taker-120s-fast", "taker-120s-slow", "holder-120s-fast", "holder-120s-slow"],
)
def test_clock_skew_neither_takes_a_live_lease_nor_loses_one(
    kube: Kube, cluster: FakeKubeServer, holder_skew: int, taker_skew: int
) -> None:
    timeline = Timeline()
    holder = lock(kube, "holder", timeline.clocks(holder_skew))
    holder.acquire()
    timeline.hooks.append(renewing(holder, timeline))
    written = parse_time(lease(cluster)["spec"]["renewTime"])
    # The holder's renewTime is as far off as its clock; nobody reads it as a verdict.
    assert abs((written - datetime.now(UTC)).total_seconds() - holder_skew) < 30

    taker = lock(kube, "taker", timeline.clocks(taker_skew), wait_s=300)
    with pytest.raises(DeployLockedError, match=r"held by holder .*renewed 1\d time\(s\)"):
        taker.acquire()

    assert timeline.now >= 1300  # it did wait its five minutes, watching the renewals
    assert lease(cluster)["spec"]["holderIdentity"] == "holder"
    holder.check("applying")  # still certainly held
    holder.release()
    assert lease(cluster) is None


def test_a_lease_silent_for_its_duration_is_taken_whatever_its_times_say(
    kube: Kube, cluster: FakeKubeServer
) -> None:
    timeline = Timeline()
    # A crashed deployer whose clock ran two minutes fast: its renewTime is in the future.
    crashed = lock(kube, "crashed", timeline.clocks(+120), duration_s=60)
    crashed.acquire()
    taker = lock(kube, "taker", timeline.clocks(), wait_s=90)
    started = timeline.now

    taker.acquire()

    # Taken after one lease duration without a change, on the taker's own clock.
    assert 60 <= timeline.now - started < 62
    current = lease(cluster)["spec"]
    assert (current["holderIdentity"], current["leaseTransitions"]) == ("taker", 1)
    taker.release()


def test_a_stalled_holder_stops_before_its_next_write_and_stays_stopped(
    kube: Kube, cluster: FakeKubeServer
) -> None:
    timeline = Timeline()
    holder = lock(kube, "holder", timeline.clocks(), duration_s=60)
    holder.acquire()
    holder.check("applying")

    timeline.advance(41)  # stalled past its renew deadline (2/3 of 60 s): no renewal went out

    with pytest.raises(DeployLeaseLostError, match=r"not renewed for 41 s .* stopped before apply"):
        holder.check("applying Deployment/web")
    # A late renewal cannot revive it, even though nobody took the lease yet.
    assert not holder.renew()
    with pytest.raises(DeployLeaseLostError):
        holder.check("recording the outcome")
    assert lease(cluster)["spec"]["holderIdentity"] == "holder"
    holder.release()  # still its own, unchanged lease: freed at once
    assert lease(cluster) is None


def test_a_holder_whose_lease_was_taken_over_is_lost(kube: Kube, cluster: FakeKubeServer) -> None:
    timeline = Timeline()
    stale = lock(kube, "stale", timeline.clocks(), duration_s=60)
    stale.acquire()
    taker = lock(kube, "taker", timeline.clocks(), wait_s=90)
    taker.acquire()  # 60 s of silence observed (the stale holder never renewed)

    assert not stale.renew()
    with pytest.raises(DeployLeaseLostError, match=r"not renewed for 60 s.*before rolling back"):
        stale.check("rolling back to #1")
    stale.release()  # must not delete the new holder's lease
    assert lease(cluster)["spec"]["holderIdentity"] == "taker"
    taker.check("applying")
    taker.release()


def test_a_lease_written_by_someone_else_is_lost_at_the_next_renewal(
    kube: Kube, cluster: FakeKubeServer
) -> None:
    timeline = Timeline()
    holder = lock(kube, "holder", timeline.clocks(), duration_s=60)
    holder.acquire()
    # Renewing in time, but someone else wrote the lease meanwhile (a takeover, a hand edit):
    # the compare-and-swap renewal gets 409.
    live = lease(cluster)
    live["spec"]["holderIdentity"] = "intruder"
    cluster.put_object(live)
    timeline.advance(20)
    assert not holder.renew()
    assert holder.lost == "lease mlgitops-deploy-web was taken over by another deploy"
    with pytest.raises(DeployLeaseLostError, match="taken over by another deploy"):
        holder.check("applying")


def test_transient_renewal_errors_are_retried_until_the_deadline(
    kube: Kube, cluster: FakeKubeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline = Timeline()
    holder = lock(kube, "holder", timeline.clocks(), duration_s=60)
    holder.acquire()

    def unavailable(obj: dict[str, Any]) -> dict[str, Any]:
        raise KubeError("etcdserver: request timed out (HTTP 500)", 500)

    real_replace = kube.replace
    monkeypatch.setattr(kube, "replace", unavailable)
    timeline.advance(20)
    assert not holder.renew()
    holder.check("applying")  # 20 s without a renewal: inside the 40 s deadline
    timeline.advance(15)
    monkeypatch.setattr(kube, "replace", real_replace)
    assert holder.renew()  # the API is back before the deadline: the lease is fine
    timeline.advance(39)
    holder.check("applying")
    monkeypatch.setattr(kube, "replace", unavailable)
    timeline.advance(2)
    assert not holder.renew()
    with pytest.raises(DeployLeaseLostError, match="not renewed for 41 s"):
        holder.check("applying")


def test_a_released_lease_is_taken_at_once(kube: Kube, cluster: FakeKubeServer) -> None:
    timeline = Timeline()
    holder = lock(kube, "holder", timeline.clocks())
    holder.acquire()
    timeline.hooks.append(lambda now: holder.release() if now >= 1005 else None)
    taker = lock(kube, "taker", timeline.clocks(), wait_s=90)

    taker.acquire()

    assert timeline.now < 1010  # did not wait out a lease duration
    assert lease(cluster)["spec"]["holderIdentity"] == "taker"


def test_the_renew_thread_renews_in_real_time(kube: Kube, cluster: FakeKubeServer) -> None:
    with DeployLock(kube, NS, "web", identity="first", duration_s=3) as first:
        held = lease(cluster)
        assert held is not None
        renewed = held["spec"]["renewTime"]
        version = held["metadata"]["resourceVersion"]
        # Every third of the duration, so a deploy in progress never looks expired.
        cluster.wait_for(lambda: lease(cluster)["spec"]["renewTime"] != renewed, timeout=5)
        assert lease(cluster)["metadata"]["resourceVersion"] != version
        first.check("applying")
        with pytest.raises(DeployLockedError, match="held by first since"):
            DeployLock(kube, NS, "web", identity="second", wait_s=0).acquire()
    assert lease(cluster) is None
    assert first.lost is None
    with DeployLock(kube, NS, "web", identity="second", wait_s=0):
        assert lease(cluster)["spec"]["holderIdentity"] == "second"


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


def test_a_lease_already_ours_is_adopted(kube: Kube, cluster: FakeKubeServer) -> None:
    """A create that reached the server but whose answer was lost: the lease names us."""
    timeline = Timeline()
    first = lock(kube, "me", timeline.clocks())
    first.acquire()  # stands in for the create whose answer never came back
    again = lock(kube, "me", timeline.clocks(), wait_s=0)
    again.acquire()
    assert timeline.now == 1000.0  # no waiting for its own lease to expire
    again.check("applying")
    again.release()
    assert lease(cluster) is None
