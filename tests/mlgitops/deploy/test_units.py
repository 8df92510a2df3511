"""The pure parts of the deploy: history bookkeeping, lease expiry, rollout assessment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlgitops.deploy.apply import comparable, object_diff
from mlgitops.deploy.deploy import choose_rollback
from mlgitops.deploy.history import (
    HistoryEntry,
    add_entry,
    last_bytes_of,
    last_success,
    parse_entries,
)
from mlgitops.deploy.images import (
    Expected,
    ImagePin,
    PodImage,
    RunningImage,
    check_running,
    parse_image_id,
    with_image,
)
from mlgitops.deploy.lock import LeaseObserver, lease_duration, micro_time, parse_time
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


def _lease(rv: str, renew: str, holder: str = "x", duration: Any = 60) -> dict[str, Any]:
    spec = {"holderIdentity": holder, "renewTime": renew, "leaseDurationSeconds": duration}
    return {"metadata": {"resourceVersion": rv}, "spec": spec}


def test_lease_expiry_is_judged_by_what_this_deployer_observed() -> None:
    observer = LeaseObserver()
    # The holder's renewTime says nothing about expiry: an hour old on first sight is still live.
    an_hour_ago = micro_time(datetime.now(UTC) - timedelta(hours=1))
    assert observer.observe(_lease("1", an_hour_ago), now=100.0)
    assert not observer.expired(_lease("1", an_hour_ago), now=159.9)
    assert observer.expired(_lease("1", an_hour_ago), now=160.0)
    # A renewal (new resourceVersion) restarts the count, even with a renewTime far in the past
    # or the future (a holder whose clock is skewed).
    in_the_future = micro_time(datetime.now(UTC) + timedelta(minutes=2))
    assert observer.observe(_lease("2", in_the_future), now=150.0)
    assert observer.changes == 1
    assert not observer.expired(_lease("2", in_the_future), now=209.0)
    assert not observer.observe(_lease("2", in_the_future), now=209.0)
    assert observer.expired(_lease("2", in_the_future), now=210.0)
    # The holder's declared duration counts, not ours; a nonsensical one counts as the default.
    assert not observer.expired(_lease("2", in_the_future, duration=300), now=260.0)
    assert lease_duration({"leaseDurationSeconds": "x"}) == 60
    assert lease_duration({"leaseDurationSeconds": -5}) == 60
    now = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
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


# -------------------------------------------------------------------------------- images

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
CONFIG_A = "sha256:" + "c" * 64


@pytest.mark.parametrize(
    ("image_id", "digest", "pullable"),
    [
        # containerd and CRI-O: the repo digest (an index's digest for a multi-platform tag)
        (f"registry.example.com/mlgitops/fraud-detector@{DIGEST_A}", DIGEST_A, True),
        (f"docker.io/library/python@{DIGEST_A}", DIGEST_A, True),
        # Docker through dockershim or cri-dockerd
        (f"docker-pullable://registry.example.com/fd@{DIGEST_A}", DIGEST_A, True),
        (f"docker-pullable://127.0.0.1:5000/fd@{DIGEST_A}", DIGEST_A, True),
        # only the image ID (config digest): an image loaded into the node, Docker without a
        # repo digest
        (CONFIG_A, CONFIG_A, False),
        (f"docker://{CONFIG_A}", CONFIG_A, False),
    ],
)
def test_parse_image_id_reads_every_kubelet_format(
    image_id: str, digest: str, pullable: bool
) -> None:
    assert parse_image_id(image_id) == PodImage(digest, pullable)


@pytest.mark.parametrize("value", ["", None, "registry.example.com/fd:1", "fd@notadigest"])
def test_parse_image_id_rejects_what_names_no_bytes(value: str | None) -> None:
    assert parse_image_id(value) is None


def _pod_with(name: str, image_id: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"containerStatuses": [{"name": "server", "imageID": image_id}]},
    }


def test_check_running_compares_the_digest_the_pods_report() -> None:
    expected = Expected(RunningImage(DIGEST_A), "the registry's digest for fd:1")
    good = [_pod_with("p1", f"fd@{DIGEST_A}"), _pod_with("p2", f"docker-pullable://fd@{DIGEST_A}")]
    assert check_running(good, expected) == ([], [], RunningImage(DIGEST_A))

    problems, _, _ = check_running([*good, _pod_with("p3", f"fd@{DIGEST_B}")], expected)
    assert problems[0] == (
        f"pod p3 runs {DIGEST_B}, not {DIGEST_A} (the registry's digest for fd:1)"
    )
    assert problems[1].startswith("the pods run different bytes under one tag")
    problems, _, _ = check_running([_pod_with("p1", "")], expected)
    assert problems == ["pod p1 reports no usable imageID ('')"]


def test_check_running_compares_an_image_id_with_the_config_of_the_manifest() -> None:
    expected = Expected(RunningImage(DIGEST_A), "pinned", lambda: {CONFIG_A})
    ok = check_running([_pod_with("p1", CONFIG_A)], expected)
    assert ok == ([], [], RunningImage(DIGEST_A, CONFIG_A))
    problems, _, _ = check_running([_pod_with("p1", f"docker://{DIGEST_B}")], expected)
    assert problems == [f"pod p1 runs image {DIGEST_B}, not the config of {DIGEST_A} (pinned)"]
    # Unknowable (the registry cannot be asked): said, not failed; the pin was checked on pull.
    problems, notes, _ = check_running(
        [_pod_with("p1", CONFIG_A)], Expected(RunningImage(DIGEST_A))
    )
    assert problems == []
    assert "reports only the image ID" in notes[0]


def test_check_running_without_an_expectation_requires_agreement() -> None:
    pods = [_pod_with("p1", f"fd@{DIGEST_A}"), _pod_with("p2", f"fd@{DIGEST_A}")]
    assert check_running(pods, Expected()) == ([], [], RunningImage(DIGEST_A))
    mixed = [*pods, _pod_with("p3", f"fd@{DIGEST_B}")]
    problems, _, running = check_running(mixed, Expected())
    assert running == RunningImage()
    assert problems == [
        f"the pods run different bytes under one tag: p1 {DIGEST_A}, p2 {DIGEST_A}, p3 {DIGEST_B}"
    ]
    assert check_running([_pod_with("p1", CONFIG_A)], Expected())[2] == RunningImage("", CONFIG_A)
    # A tag that ran other bytes before (a re-push), known from the history
    before = Expected(RunningImage("", CONFIG_A), "what fd:1 ran in #3")
    problems, _, _ = check_running([_pod_with("p1", DIGEST_B)], before)
    assert problems == [f"pod p1 runs image {DIGEST_B}, not {CONFIG_A} (what fd:1 ran in #3)"]


def test_pins_and_the_deployment_they_apply() -> None:
    assert ImagePin("r.io/fd:1", DIGEST_A, "registry").applied == f"r.io/fd:1@{DIGEST_A}"
    assert ImagePin("r.io/fd:1").applied == "r.io/fd:1"
    assert ImagePin(f"r.io/fd:1@{DIGEST_A}", DIGEST_A, "git").applied == f"r.io/fd:1@{DIGEST_A}"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fd"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "server", "image": "r.io/fd:1"}, {"name": "sidecar", "image": "s:1"}
        ]}}},
    }  # fmt: skip
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fd"}}
    pinned = with_image([service, deployment], "fd", f"r.io/fd:1@{DIGEST_A}")
    containers = pinned[1]["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == [f"r.io/fd:1@{DIGEST_A}", "s:1"]
    assert pinned[0] is service
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "r.io/fd:1"


def test_last_bytes_of_a_tag_come_from_successful_entries() -> None:
    entries = [
        entry("a", "fd:1", image_digest=DIGEST_A),
        entry("b", "fd:2", image_digest=DIGEST_B),
        entry("c", "fd:1", outcome="failed", image_digest=DIGEST_B),
        entry("d", "fd:1"),  # unknown bytes (recorded before digests were)
    ]
    entries = [e.model_copy(update={"seq": i + 1}) for i, e in enumerate(entries)]
    found = last_bytes_of(entries, "fd:1")
    assert found is not None
    assert (found.seq, found.image_digest) == (1, DIGEST_A)
    assert last_bytes_of(entries, "fd:3") is None
    assert entries[0].applied_image == f"fd:1@{DIGEST_A}"
    assert entries[3].applied_image == "fd:1"


def test_the_documented_deploy_exit_codes_are_the_error_classes() -> None:
    from mlgitops import errors
    from tests.mlgitops.deploy.helpers import PROJECT

    def words(path: str) -> str:
        return " ".join((PROJECT / path).read_text(encoding="utf-8").split())

    readme, doc = words("README.md"), words("docs/deploy.md")
    sigint = errors.DeployInterruptedError("", 2).exit_code
    sigterm = errors.DeployInterruptedError("", 15).exit_code
    assert f"{errors.DeployLeaseLostError.exit_code} deploy lease lost" in readme
    assert f"{errors.ImageDigestError.exit_code} image digest unavailable" in readme
    assert f"{sigint} deploy interrupted (SIGINT; {sigterm} for SIGTERM)" in readme
    for phrase in (
        f"{errors.DeployError.exit_code} deploy error",
        f"{errors.RolloutFailedError.exit_code} rollout failed",
        f"{errors.DeployLockedError.exit_code} locked",
        f"{errors.GitError.exit_code} unknown revision",
        f"{errors.DeployLeaseLostError.exit_code} lease lost mid-deploy",
        f"{errors.ImageDigestError.exit_code} no digest",
        f"{sigint} / {sigterm} ended by SIGINT / SIGTERM",
    ):
        assert phrase in doc
