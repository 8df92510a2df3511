"""The pure parts of the deploy: history bookkeeping, lease expiry, rollout assessment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlgitops.deploy.apply import comparable, object_diff
from mlgitops.deploy.deploy import choose_rollback
from mlgitops.deploy.history import HistoryEntry, add_entry, last_success, parse_entries
from mlgitops.deploy.lock import lease_expired, micro_time, parse_time
from mlgitops.deploy.render import annotate_commit, order_objects, pick_deployment
from mlgitops.deploy.rollout import assess, expected_pod_mismatches, new_replicaset
from mlgitops.errors import DeployError

pytestmark = pytest.mark.timeout(30)


def entry(commit: str, image: str, outcome: str = "succeeded", **kw: Any) -> HistoryEntry:
    return HistoryEntry(
        kind=kw.pop("kind", "deploy"),
        outcome=outcome,  # type: ignore[arg-type]
        environment="staging",
        revision="HEAD",
        commit=commit,
        image=image,
        model_hash=f"sha256:{commit}",
        started_at="2026-11-22T00:00:00Z",
        finished_at="2026-11-22T00:00:01Z",
        **kw,
    )


# ------------------------------------------------------------------------------- history


def test_add_entry_numbers_orders_and_caps() -> None:
    data: dict[str, str] = {"note": "not ours"}
    for i in range(5):
        data, stored = add_entry(data, entry(f"c{i}", f"img{i}"), limit=3)
        assert stored.seq == i + 1
    assert sorted(data) == ["000003", "000004", "000005", "note"]
    entries = parse_entries(data)
    assert [e.seq for e in entries] == [3, 4, 5]
    assert [e.commit for e in entries] == ["c2", "c3", "c4"]
    # Sequence numbers keep growing after old entries were dropped.
    data, stored = add_entry(data, entry("c5", "img5"), limit=3)
    assert stored.seq == 6


def test_parse_entries_skips_garbage() -> None:
    good = entry("c1", "img").model_dump_json(exclude={"seq"})
    data = {"000001": good, "000002": "{not json", "000003": json.dumps({"kind": "deploy"})}
    assert [e.seq for e in parse_entries(data)] == [1]


def test_last_success_skips_failures() -> None:
    entries = [entry("a", "A"), entry("b", "B"), entry("c", "C", outcome="failed")]
    entries = [e.model_copy(update={"seq": i + 1}) for i, e in enumerate(entries)]
    found = last_success(entries)
    assert found is not None
    assert found.commit == "b"


def test_choose_rollback_defaults_to_the_previous_model() -> None:
    entries = [
        entry("a", "A"),
        entry("b", "B"),
        entry("b2", "B"),  # same image, a commit that only touched something else
        entry("c", "C", outcome="failed"),
    ]
    entries = [e.model_copy(update={"seq": i + 1}) for i, e in enumerate(entries)]
    assert choose_rollback(entries, None).commit == "a"
    assert choose_rollback(entries, 2).commit == "b"
    with pytest.raises(DeployError, match="failed deploy"):
        choose_rollback(entries, 4)
    with pytest.raises(DeployError, match="no history entry #9"):
        choose_rollback(entries, 9)
    with pytest.raises(DeployError, match="no successful deploy"):
        choose_rollback([], None)


# --------------------------------------------------------------------------------- lease


def test_lease_expiry() -> None:
    now = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    fresh = micro_time(now - timedelta(seconds=10))
    stale = micro_time(now - timedelta(seconds=61))
    assert not lease_expired(
        {"holderIdentity": "x", "renewTime": fresh, "leaseDurationSeconds": 60}, now
    )
    assert lease_expired(
        {"holderIdentity": "x", "renewTime": stale, "leaseDurationSeconds": 60}, now
    )
    assert lease_expired({"holderIdentity": "", "renewTime": fresh}, now)
    assert lease_expired({"holderIdentity": "x"}, now)
    assert parse_time("2026-11-22T01:00:00Z") == now
    assert parse_time(micro_time(now)) == now


# ------------------------------------------------------------------------------- rollout


def _deployment(generation: int = 2, observed: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "uid": "d1",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {"replicas": 2, "progressDeadlineSeconds": 60, "template": {"metadata": {}}},
        "status": {"observedGeneration": observed, **status},
    }


def _rs(name: str, revision: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"rs-{name}",
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"uid": "d1"}],
        },
        "spec": {"template": {}},
    }


def _pod(rs: str, waiting: str = "", restarts: int = 0, image: str = "img:new") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {
            "name": f"{rs}-x",
            "ownerReferences": [{"uid": f"rs-{rs}"}],
            "annotations": {"mlgitops.io/model-hash": "sha256:new"},
        },
        "spec": {"containers": [{"name": "server", "image": image}]},
        "status": {
            "containerStatuses": [{"name": "server", "state": state, "restartCount": restarts}]
        },
    }


def test_assess_waits_for_the_controller() -> None:
    state = assess(_deployment(generation=3, observed=2), [], [])
    assert not state.done
    assert state.failure is None
    assert "observe" in state.message


def test_assess_complete() -> None:
    full = {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    state = assess(_deployment(**full), [_rs("old", "1"), _rs("new", "2")], [_pod("new")])
    assert state.done
    assert state.new_replicaset is not None
    assert state.new_replicaset["metadata"]["name"] == "new"


def test_assess_waits_for_old_replicas_to_go() -> None:
    state = assess(
        _deployment(replicas=3, updatedReplicas=2, availableReplicas=3),
        [_rs("old", "1"), _rs("new", "2")],
        [],
    )
    assert not state.done
    assert "old replicas" in state.message


@pytest.mark.parametrize(
    ("reason", "restarts", "fails"),
    [
        ("CrashLoopBackOff", 1, False),
        ("CrashLoopBackOff", 3, True),
        ("ImagePullBackOff", 0, True),
        ("ErrImagePull", 0, True),
        ("ContainerCreating", 0, False),
    ],
)
def test_assess_detects_pods_that_cannot_start(reason: str, restarts: int, fails: bool) -> None:
    state = assess(_deployment(replicas=1), [_rs("new", "2")], [_pod("new", reason, restarts)])
    assert (state.failure is not None) == fails
    if fails:
        assert state.failure is not None
        assert state.failure.reason == reason


def test_assess_ignores_crashing_pods_of_old_replicasets() -> None:
    pods = [_pod("old", "CrashLoopBackOff", 9), _pod("new")]
    state = assess(_deployment(replicas=1), [_rs("old", "1"), _rs("new", "2")], pods)
    assert state.failure is None


def _deadline_exceeded(replicaset: str, at: str = "2026-11-22T10:00:05Z") -> dict[str, Any]:
    return {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "lastUpdateTime": at, "lastTransitionTime": at,
            "message": f'ReplicaSet "{replicaset}" has timed out progressing.'}  # fmt: skip


def test_assess_progress_deadline() -> None:
    conditions = [_deadline_exceeded("new")]
    applied_at = datetime(2026, 11, 22, 10, 0, 5, 800_000, tzinfo=UTC)  # the same second
    state = assess(_deployment(conditions=conditions), [_rs("new", "2")], [], applied_at=applied_at)
    assert state.failure is not None
    assert state.failure.reason == "ProgressDeadlineExceeded"


def test_assess_ignores_the_deadline_of_the_failed_replicaset_after_a_rollback() -> None:
    # Rolled back to the old ReplicaSet "new" (revision 2 again), still available; the
    # controller keeps the failed rollout's condition, which names the failed ReplicaSet.
    status = {"replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}
    deployment = _deployment(conditions=[_deadline_exceeded("failed")], **status)

    state = assess(deployment, [_rs("failed", "1"), _rs("new", "2")], [_pod("new")])

    assert state.failure is None
    assert not state.done
    assert "old replicas pending termination" in state.message


def test_assess_ignores_a_deadline_older_than_the_apply() -> None:
    deployment = _deployment(conditions=[_deadline_exceeded("new", at="2026-11-22T10:00:04Z")])
    applied_at = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
    state = assess(deployment, [_rs("new", "2")], [], applied_at=applied_at)
    assert state.failure is None


def test_new_replicaset_falls_back_to_the_template() -> None:
    deployment = _deployment()
    deployment["metadata"]["annotations"] = {}
    deployment["spec"]["template"] = {"metadata": {"labels": {"a": "1"}}}
    rs = _rs("new", "7")
    rs["spec"]["template"] = {"metadata": {"labels": {"a": "1", "pod-template-hash": "h"}}}
    assert new_replicaset(deployment, [_rs("old", "1"), rs]) is rs


def test_expected_pod_mismatches() -> None:
    want = {"mlgitops.io/model-hash": "sha256:new"}
    assert expected_pod_mismatches([_pod("new")], want, "img:new") == []
    assert expected_pod_mismatches([], want, "img:new") == ["no running pods in the new ReplicaSet"]
    problems = expected_pod_mismatches([_pod("new", image="img:old")], want, "img:new")
    assert problems == ["pod new-x: image 'img:old', expected 'img:new'"]
    problems = expected_pod_mismatches([_pod("new")], {"mlgitops.io/model-hash": "x"}, "img:new")
    assert "mlgitops.io/model-hash='sha256:new', expected 'x'" in problems[0]


# ------------------------------------------------------------------------- render, apply


def test_order_pick_and_annotate() -> None:
    objects = [
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "a"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
         "spec": {"template": {"metadata": {}}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"}},
    ]  # fmt: skip
    assert [o["kind"] for o in order_objects(objects)] == [
        "ServiceAccount", "Deployment", "HorizontalPodAutoscaler"
    ]  # fmt: skip
    assert pick_deployment(objects, "other")["metadata"]["name"] == "a"
    annotate_commit(objects, "a", "f" * 40)
    annotations = objects[1]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"mlgitops.io/git-commit": "f" * 40}
    with pytest.raises(DeployError, match="which Deployment"):
        pick_deployment([*objects, dict(objects[1], metadata={"name": "b"})], "c")


def test_object_diff_ignores_server_bookkeeping() -> None:
    live = {
        "kind": "Service",
        "metadata": {"name": "a", "resourceVersion": "5", "generation": 2, "uid": "u",
                     "managedFields": [{"manager": "x"}], "creationTimestamp": "t"},
        "spec": {"port": 1},
        "status": {"loadBalancer": {}},
    }  # fmt: skip
    desired = {**live, "metadata": {**live["metadata"], "resourceVersion": "6"}}
    assert object_diff(live, desired, "Service/a") == ""
    changed = {**desired, "spec": {"port": 2}}
    diff = object_diff(live, changed, "Service/a")
    assert "-  port: 1" in diff
    assert "+  port: 2" in diff
    assert comparable(None) is None
    assert object_diff(None, desired, "Service/a").startswith("--- /dev/null")
