"""Tests of the fake Kubernetes API server against the real kubectl and Python client."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError

from tests.support.fake_kube import FakeKubeServer
from tests.support.fake_kube.plugin import Kubectl

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(60)]

NS = "default"
SSA = ("apply", "--server-side", "--field-manager=mlgitops")  # kubectl args as mlgitops uses them


def deployment(
    name: str = "app",
    image: str = "registry/app:v1",
    replicas: int = 2,
    deadline: int = 600,  # x time_scale 0.01: healthy rollouts have 6 s of slack
    env: str = "v1",
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {"mlgitops/model": env}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "MODEL", "value": env}],
                        }
                    ]
                },
            },
        },
    }


def manifest(image: str = "registry/app:v1", env: str = "v1", deadline: int = 600) -> str:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config"},
            "data": {"model": env},
        },
        deployment(image=image, env=env, deadline=deadline),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "app"},
            "spec": {"selector": {"app": "app"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ]
    return yaml.safe_dump_all(docs)


def write(tmp_path: Path, text: str, name: str = "app.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def managers(obj: dict[str, Any]) -> dict[str, str]:
    return {e["manager"]: e["operation"] for e in obj["metadata"].get("managedFields", [])}


# --------------------------------------------------------------------- kubectl


def test_kubectl_server_side_apply_and_rollout(
    fake_kube: FakeKubeServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    path = write(tmp_path, manifest())
    out = kubectl(*SSA, "-f", path, check=True)
    assert "deployment.apps/app serverside-applied" in out.stdout
    assert fake_kube.count_requests(verb="patch") == 3

    got = json.loads(
        kubectl("get", "deploy", "-o", "json", "--show-managed-fields", check=True).stdout
    )
    [dep] = got["items"]
    assert dep["metadata"]["name"] == "app"
    assert managers(dep) == {"mlgitops": "Apply"}
    assert kubectl("get", "cm", "app-config", "-o", "jsonpath={.data.model}").stdout == "v1"

    status = kubectl("rollout", "status", "deployment/app", "--timeout=30s", check=True)
    assert 'deployment "app" successfully rolled out' in status.stdout
    pods = fake_kube.list_objects("pods", NS, "app=app")
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Running" for p in pods)
    table = kubectl("get", "deployment", "app", "--no-headers", check=True).stdout.split()
    assert table[:4] == ["app", "2/2", "2", "2"]


def test_kubectl_rollout_status_reports_progress_deadline(
    fake_kube: FakeKubeServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    fake_kube.fail_image("registry/app:broken")
    path = write(tmp_path, manifest(image="registry/app:broken", deadline=60))
    kubectl(*SSA, "-f", path, check=True)

    started = time.monotonic()
    status = kubectl("rollout", "status", "deployment/app", "--timeout=30s")
    assert status.returncode != 0
    assert 'deployment "app" exceeded its progress deadline' in status.stderr
    assert time.monotonic() - started < 20  # 60 s deadline x time_scale 0.01

    pod = fake_kube.list_objects("pods", NS, "app=app")[0]
    state = pod["status"]["containerStatuses"][0]
    assert state["state"]["waiting"]["reason"] == "CrashLoopBackOff"

    def restarts() -> int:
        pod = fake_kube.list_objects("pods", NS, "app=app")[0]
        return pod["status"]["containerStatuses"][0]["restartCount"]

    fake_kube.wait_for(lambda: restarts() > state["restartCount"])


def test_kubectl_rollout_of_new_image_replaces_replicaset(
    fake_kube: FakeKubeServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl(*SSA, "-f", write(tmp_path, manifest()), check=True)
    kubectl("rollout", "status", "deployment/app", "--timeout=30s", check=True)
    kubectl(*SSA, "-f", write(tmp_path, manifest(image="registry/app:v2", env="v2")), check=True)
    kubectl("rollout", "status", "deployment/app", "--timeout=30s", check=True)

    sets = fake_kube.list_objects("replicasets", NS)
    assert sorted(rs["spec"]["replicas"] for rs in sets) == [0, 2]
    pods = fake_kube.list_objects("pods", NS)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"registry/app:v2"}
    dep = fake_kube.get_object("deployments", "app")
    assert dep is not None
    assert dep["metadata"]["generation"] == 2
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    # Undo brings back the v1 ReplicaSet as revision 3.
    kubectl("rollout", "undo", "deployment/app", check=True)
    kubectl("rollout", "status", "deployment/app", "--timeout=30s", check=True)
    pods = fake_kube.list_objects("pods", NS)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"registry/app:v1"}
    dep = fake_kube.get_object("deployments", "app")
    assert dep is not None
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    # The undo (an Update by kubectl) took the template's fields from mlgitops.
    v3 = write(tmp_path, manifest(image="registry/app:v3", env="v3", deadline=60))
    conflict = kubectl(*SSA, "-f", v3)
    assert 'conflicts with "kubectl"' in conflict.stderr

    # A failed rollout of v3 leaves the v1 pods serving.
    fake_kube.fail_image(lambda image: image.endswith(":v3"))
    kubectl(*SSA, "--force-conflicts", "-f", v3, check=True)
    failed = kubectl("rollout", "status", "deployment/app", "--timeout=30s")
    assert "exceeded its progress deadline" in failed.stderr
    images = [p["spec"]["containers"][0]["image"] for p in fake_kube.list_objects("pods", NS)]
    assert sorted(images) == ["registry/app:v1"] * 2 + ["registry/app:v3"] * 2


def test_kubectl_diff_server_side(
    fake_kube: FakeKubeServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    path = write(tmp_path, manifest())
    kubectl(*SSA, "-f", path, check=True)
    fake_kube.wait_for(lambda: kubectl("rollout", "status", "deploy/app").returncode == 0)

    same = kubectl("diff", "--server-side", "--field-manager=mlgitops", "-f", path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout == ""

    changed = write(tmp_path, manifest(env="v2"), "changed.yaml")
    diff = kubectl("diff", "--server-side", "--field-manager=mlgitops", "-f", changed)
    assert diff.returncode == 1, diff.stderr
    assert "-  model: v1" in diff.stdout
    assert "+  model: v2" in diff.stdout
    assert "+          value: v2" in diff.stdout
    cm = fake_kube.get_object("configmaps", "app-config")
    assert cm is not None
    assert cm["data"] == {"model": "v1"}


def test_kubectl_server_dry_run_changes_nothing(
    fake_kube: FakeKubeServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl(*SSA, "-f", write(tmp_path, manifest()), check=True)
    before = {r: fake_kube.list_objects(r, NS) for r in ("configmaps", "deployments", "services")}

    v2 = write(tmp_path, manifest(env="v2"), "v2.yaml")
    out = kubectl(*SSA, "--dry-run=server", "-f", v2, check=True)
    assert "serverside-applied (server dry run)" in out.stdout
    assert fake_kube.count_requests(verb="patch") == 6

    after = {r: fake_kube.list_objects(r, NS) for r in ("configmaps", "services")}
    assert after == {r: before[r] for r in after}
    dep = fake_kube.get_object("deployments", "app")
    assert dep is not None
    assert dep["spec"] == before["deployments"][0]["spec"]
    assert dep["metadata"]["generation"] == 1


def test_kubectl_imperative_commands(
    fake_kube: FakeKubeServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl(*SSA, "-f", write(tmp_path, manifest()), check=True)
    kubectl("rollout", "status", "deployment/app", "--timeout=30s", check=True)

    # rollout restart is a strategic-merge patch of the pod template.
    kubectl("rollout", "restart", "deployment/app", check=True)
    kubectl("rollout", "status", "deployment/app", "--timeout=30s", check=True)
    assert len(fake_kube.list_objects("replicasets", NS)) == 2

    kubectl("scale", "deployment/app", "--replicas=3", check=True)
    fake_kube.wait_for(lambda: len(fake_kube.list_objects("pods", NS)) == 3)

    # Applying a different replica count now conflicts with kubectl's ownership.
    conflict = kubectl(*SSA, "-f", write(tmp_path, manifest(), "again.yaml"))
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower()
    assert ".spec.replicas" in conflict.stderr
    kubectl(*SSA, "--force-conflicts", "-f", write(tmp_path, manifest(), "again.yaml"), check=True)
    fake_kube.wait_for(lambda: len(fake_kube.list_objects("pods", NS)) == 2)

    listing = kubectl("get", "pods", "-l", "app in (app, other)", "-o", "name", check=True)
    assert len(listing.stdout.split()) == 2
    kubectl("delete", "deployment", "app", check=True)
    assert fake_kube.list_objects("replicasets", NS) == []
    assert fake_kube.list_objects("pods", NS) == []


def test_kubectl_typed_create_and_strict_validation(
    fake_kube: FakeKubeServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    # These commands POST protobuf bodies.
    kubectl("create", "namespace", "team-a", check=True)
    kubectl("create", "configmap", "c", "--from-literal=k=v", "-n", "team-a", check=True)
    kubectl(
        "create", "secret", "generic", "s", "--from-literal=pw=hunter2", "-n", "team-a", check=True
    )
    kubectl("create", "serviceaccount", "robot", "-n", "team-a", check=True)
    configmap = fake_kube.get_object("configmaps", "c", "team-a")
    assert configmap is not None
    assert configmap["data"] == {"k": "v"}
    secret = fake_kube.get_object("secrets", "s", "team-a")
    assert secret is not None
    assert secret["data"] == {"pw": "aHVudGVyMg=="}
    assert secret["type"] == "Opaque"
    assert fake_kube.get_object("serviceaccounts", "robot", "team-a") is not None

    # kubectl asks for fieldValidation=Strict; unknown top-level fields are rejected.
    typo = manifest().replace("\nspec:", "\nspce:")
    out = kubectl(*SSA, "-f", write(tmp_path, typo))
    assert out.returncode != 0
    assert 'strict decoding error: unknown field "spce"' in out.stderr
    assert fake_kube.get_object("deployments", "app") is None

    # Namespaces must exist, as on a real cluster.
    missing = kubectl(*SSA, "-n", "nowhere", "-f", write(tmp_path, manifest(), "ns.yaml"))
    assert 'namespaces "nowhere" not found' in missing.stderr


# ------------------------------------------------------------- python client


def test_dynamic_client_discovery(fake_kube_dynamic: Any) -> None:
    deployments = fake_kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced
    assert "deploy" in deployments.short_names
    assert "patch" in deployments.verbs
    namespaces = fake_kube_dynamic.resources.get(api_version="v1", kind="Namespace")
    assert not namespaces.namespaced
    for api_version, kind in [
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("coordination.k8s.io/v1", "Lease"),
        ("v1", "ServiceAccount"),
    ]:
        assert fake_kube_dynamic.resources.get(api_version=api_version, kind=kind).kind == kind
    assert fake_kube_dynamic.version["kubernetes"]["minor"] == "37"


def test_server_side_apply_ownership(fake_kube: FakeKubeServer, fake_kube_dynamic: Any) -> None:
    deployments = fake_kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    body = deployment()
    body["metadata"]["labels"]["tier"] = "serving"
    created = deployments.server_side_apply(body=body, namespace=NS, field_manager="mlgitops")
    assert created.metadata.generation == 1
    assert managers(created.to_dict()) == {"mlgitops": "Apply"}
    fields = created.metadata.managedFields[0].fieldsV1.to_dict()
    assert "f:replicas" in fields["f:spec"]
    assert 'k:{"name":"server"}' in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]

    # Same manager omits a label it applied before: the label is removed.
    del body["metadata"]["labels"]["tier"]
    again = deployments.server_side_apply(body=body, namespace=NS, field_manager="mlgitops")
    assert again.metadata.labels.to_dict() == {"app": "app"}
    assert again.metadata.generation == 1

    # Another manager changing an owned field conflicts unless forced.
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {"replicas": 5},
    }
    with pytest.raises(ConflictError) as err:
        deployments.server_side_apply(body=other, namespace=NS, field_manager="autoscaler")
    status = json.loads(err.value.body)
    assert status["kind"] == "Status"
    assert status["reason"] == "Conflict"
    assert '"mlgitops"' in status["message"]
    assert ".spec.replicas" in status["message"]

    # Agreeing on a value is not a conflict; both managers then share it.
    same = {**other, "spec": {"replicas": 2}}
    deployments.server_side_apply(body=same, namespace=NS, field_manager="autoscaler")

    forced = deployments.server_side_apply(
        body=other, namespace=NS, field_manager="autoscaler", force_conflicts=True
    )
    assert forced.spec.replicas == 5
    assert forced.metadata.generation == 2
    owned = {e.manager: e.fieldsV1.to_dict() for e in forced.metadata.managedFields}
    assert "f:replicas" not in owned["mlgitops"]["f:spec"]
    assert "f:replicas" in owned["autoscaler"]["f:spec"]

    # Without ownership of replicas, mlgitops dropping it leaves the value alone.
    del body["spec"]["replicas"]
    kept = deployments.server_side_apply(body=body, namespace=NS, field_manager="mlgitops")
    assert kept.spec.replicas == 5


def test_apply_prunes_list_items_it_no_longer_applies(
    fake_kube_api_client: Any, fake_kube_dynamic: Any
) -> None:
    deployments = fake_kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    body = deployment()
    env = body["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "DEBUG", "value": "1"})
    deployments.server_side_apply(body=body, namespace=NS, field_manager="mlgitops")

    # Another writer adds its own variable with a plain (Update) patch.
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "server", "env": [{"name": "INJECTED", "value": "x"}]}]
                }
            }
        }
    }
    k8s.AppsV1Api(fake_kube_api_client).patch_namespaced_deployment(
        "app", NS, patch, field_manager="injector"
    )

    env.pop()  # mlgitops stops applying DEBUG
    got = deployments.server_side_apply(body=body, namespace=NS, field_manager="mlgitops")
    container = got.spec.template.spec.containers[0]
    assert [e.name for e in container.env] == ["MODEL", "INJECTED"]
    assert container.image == "registry/app:v1"
    assert managers(got.to_dict()) == {"mlgitops": "Apply", "injector": "Update"}


def test_apply_patch_body_forms_and_errors(fake_kube: FakeKubeServer) -> None:
    url = f"{fake_kube.url}/api/v1/namespaces/{NS}/configmaps/settings"
    headers = {"Content-Type": "application/apply-patch+yaml"}
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n"
    with httpx.Client(timeout=10) as http:
        missing = http.patch(url, content=doc, headers=headers)
        assert missing.status_code == 400
        assert missing.json()["reason"] == "BadRequest"
        assert "fieldManager" in missing.json()["message"]

        created = http.patch(url, params={"fieldManager": "t"}, content=doc, headers=headers)
        assert created.status_code == 201
        assert created.json()["data"] == {"a": "1"}
        as_json = json.dumps(yaml.safe_load(doc.replace("'1'", "'2'")))
        updated = http.patch(url, params={"fieldManager": "t"}, content=as_json, headers=headers)
        assert updated.status_code == 200
        assert updated.json()["data"] == {"a": "2"}

        bad_type = http.patch(url, content="{}", headers={"Content-Type": "text/plain"})
        assert bad_type.status_code == 415
        assert bad_type.json()["reason"] == "UnsupportedMediaType"

        missing_obj = http.get(url.replace("settings", "nope"))
        assert missing_obj.status_code == 404
        assert missing_obj.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'configmaps "nope" not found',
            "reason": "NotFound",
            "code": 404,
            "details": {"name": "nope", "group": "", "kind": "configmaps"},
        }

        no_ns = http.post(
            f"{fake_kube.url}/api/v1/namespaces/ghost/configmaps",
            json={"metadata": {"name": "x"}},
        )
        assert no_ns.status_code == 404
        invalid = http.post(
            f"{fake_kube.url}/apis/apps/v1/namespaces/{NS}/deployments",
            json={**deployment(), "spec": {**deployment()["spec"], "selector": {}}},
        )
        assert invalid.status_code == 422
        assert invalid.json()["reason"] == "Invalid"


def test_patch_flavours(fake_kube_api_client: Any, fake_kube_dynamic: Any) -> None:
    apps = k8s.AppsV1Api(fake_kube_api_client)
    apps.create_namespaced_deployment(NS, deployment())

    # Strategic merge: containers merge by name, env by name.
    smp = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "server", "env": [{"name": "EXTRA", "value": "1"}]},
                        {"name": "sidecar", "image": "registry/sidecar:1"},
                    ]
                }
            }
        }
    }
    got = apps.patch_namespaced_deployment("app", NS, smp)
    containers = got.spec.template.spec.containers
    assert [c.name for c in containers] == ["server", "sidecar"]
    assert containers[0].image == "registry/app:v1"
    assert [e.name for e in containers[0].env] == ["MODEL", "EXTRA"]

    # JSON patch (a list body selects application/json-patch+json).
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
    ]
    got = apps.patch_namespaced_deployment("app", NS, ops)
    assert got.spec.replicas == 4
    assert len(got.spec.template.spec.containers) == 1

    # Merge patch replaces lists wholesale.
    merge = {
        "metadata": {"labels": {"team": "ml"}},
        "spec": {
            "template": {"spec": {"containers": [{"name": "only", "image": "registry/only:1"}]}}
        },
    }
    deployments = fake_kube_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    data = deployments.patch(
        body=merge, name="app", namespace=NS, content_type="application/merge-patch+json"
    ).to_dict()
    assert [c["name"] for c in data["spec"]["template"]["spec"]["containers"]] == ["only"]
    assert data["metadata"]["labels"] == {"app": "app", "team": "ml"}


def test_list_and_watch_deployments(fake_kube: FakeKubeServer, fake_kube_api_client: Any) -> None:
    apps = k8s.AppsV1Api(fake_kube_api_client)
    apps.create_namespaced_deployment(NS, deployment("one"))
    listing = apps.list_namespaced_deployment(NS)
    assert [d.metadata.name for d in listing.items] == ["one"]
    rv = listing.metadata.resource_version

    def writer() -> None:
        time.sleep(0.2)
        apps.create_namespaced_deployment(NS, deployment("two"))
        apps.delete_namespaced_deployment("two", NS)

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        apps.list_namespaced_deployment,
        NS,
        resource_version=rv,
        timeout_seconds=10,
        field_selector="metadata.name=two",
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    thread.join()
    assert seen[0] == ("ADDED", "two")
    assert seen[-1] == ("DELETED", "two")
    assert {name for _, name in seen} == {"two"}

    # Without a resourceVersion the stream starts with the current state, and
    # timeoutSeconds ends it.
    started = time.monotonic()
    events = list(watch.Watch().stream(apps.list_namespaced_deployment, NS, timeout_seconds=1))
    assert time.monotonic() - started < 5
    assert ("ADDED", "one") in [(e["type"], e["object"].metadata.name) for e in events]


def test_dynamic_watch_and_selectors(fake_kube: FakeKubeServer, fake_kube_dynamic: Any) -> None:
    cms = fake_kube_dynamic.resources.get(api_version="v1", kind="ConfigMap")
    for name, env in [("a", "prod"), ("b", "dev"), ("c", "test")]:
        cms.create(body={"metadata": {"name": name, "labels": {"env": env}}}, namespace=NS)

    def names(selector: str) -> list[str]:
        items = cms.get(namespace=NS, label_selector=selector).items
        return sorted(i.metadata.name for i in items)

    assert names("env=prod") == ["a"]
    assert names("env!=prod") == ["b", "c"]
    assert names("env in (prod, dev)") == ["a", "b"]
    assert names("env notin (prod)") == ["b", "c"]
    assert names("env") == ["a", "b", "c"]
    assert names("!env") == []
    by_field = cms.get(namespace=NS, field_selector="metadata.name=b").items
    assert [i.metadata.name for i in by_field] == ["b"]

    rv = cms.get(namespace=NS).metadata.resourceVersion
    cms.patch(
        name="b",
        namespace=NS,
        body={"data": {"k": "v"}},
        content_type="application/merge-patch+json",
    )
    events = []
    for event in cms.watch(namespace=NS, resource_version=rv, timeout=1):
        events.append((event["type"], event["object"].metadata.name))
        break
    assert events == [("MODIFIED", "b")]


def test_lease_optimistic_concurrency(fake_kube_api_client: Any) -> None:
    leases = k8s.CoordinationV1Api(fake_kube_api_client)
    body = k8s.V1Lease(
        metadata=k8s.V1ObjectMeta(name="leader"),
        spec=k8s.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
    )
    created = leases.create_namespaced_lease(NS, body)
    stale_rv = created.metadata.resource_version

    with pytest.raises(ApiException) as exists:
        leases.create_namespaced_lease(NS, body)
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"

    created.spec.holder_identity = "b"
    updated = leases.replace_namespaced_lease("leader", NS, created)
    assert int(updated.metadata.resource_version) > int(stale_rv)

    created.spec.holder_identity = "c"
    created.metadata.resource_version = stale_rv
    with pytest.raises(ApiException) as stale:
        leases.replace_namespaced_lease("leader", NS, created)
    assert stale.value.status == 409
    status = json.loads(stale.value.body)
    assert status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]
    assert leases.read_namespaced_lease("leader", NS).spec.holder_identity == "b"

    # Delete with a stale resourceVersion precondition is refused too.
    stale_delete = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version=stale_rv))
    with pytest.raises(ApiException) as refused:
        leases.delete_namespaced_lease("leader", NS, body=stale_delete)
    assert refused.value.status == 409
    assert "Precondition failed" in json.loads(refused.value.body)["message"]
    current = k8s.V1Preconditions(resource_version=updated.metadata.resource_version)
    leases.delete_namespaced_lease("leader", NS, body=k8s.V1DeleteOptions(preconditions=current))
    with pytest.raises(ApiException) as gone:
        leases.read_namespaced_lease("leader", NS)
    assert gone.value.status == 404


def test_generation_rules(fake_kube: FakeKubeServer, fake_kube_api_client: Any) -> None:
    fake_kube.controller.stop()  # keep status writes out of the way
    apps = k8s.AppsV1Api(fake_kube_api_client)
    core = k8s.CoreV1Api(fake_kube_api_client)
    dep = apps.create_namespaced_deployment(NS, deployment())
    assert dep.metadata.generation == 1
    rv1 = int(dep.metadata.resource_version)

    dep = apps.patch_namespaced_deployment("app", NS, {"metadata": {"labels": {"x": "y"}}})
    assert dep.metadata.generation == 1
    assert int(dep.metadata.resource_version) > rv1
    dep = apps.patch_namespaced_deployment("app", NS, {"spec": {"replicas": 3}})
    assert dep.metadata.generation == 2
    dep = apps.patch_namespaced_deployment_status(
        "app", NS, {"status": {"observedGeneration": 2, "replicas": 3}}
    )
    assert dep.metadata.generation == 2
    assert dep.status.replicas == 3
    # Main-resource writes cannot change status; status writes cannot change spec.
    dep = apps.patch_namespaced_deployment("app", NS, {"status": {"replicas": 9}})
    assert dep.status.replicas == 3
    dep = apps.patch_namespaced_deployment_status("app", NS, {"spec": {"replicas": 9}})
    assert dep.spec.replicas == 3
    # A no-op write keeps the resourceVersion.
    same = apps.patch_namespaced_deployment("app", NS, {"spec": {"replicas": 3}})
    assert same.metadata.resource_version == dep.metadata.resource_version

    cm = core.create_namespaced_config_map(
        NS, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="c"), data={"a": "1"})
    )
    assert cm.metadata.generation == 1
    cm = core.patch_namespaced_config_map("c", NS, {"metadata": {"annotations": {"n": "1"}}})
    assert cm.metadata.generation == 1
    cm = core.patch_namespaced_config_map("c", NS, {"data": {"a": "2"}})
    assert cm.metadata.generation == 2


def test_dry_run_persists_nothing(fake_kube: FakeKubeServer, fake_kube_dynamic: Any) -> None:
    cms = fake_kube_dynamic.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}, "data": {"a": "1"}}
    out = cms.create(body=body, namespace=NS, dry_run="All")
    assert out.data.a == "1"
    assert fake_kube.get_object("configmaps", "d") is None
    out = cms.server_side_apply(body=body, namespace=NS, field_manager="m", dry_run="All")
    assert out.metadata.name == "d"
    assert fake_kube.get_object("configmaps", "d") is None

    cms.server_side_apply(body=body, namespace=NS, field_manager="m")
    before = fake_kube.get_object("configmaps", "d")
    changed = copy.deepcopy(body)
    changed["data"]["a"] = "2"
    out = cms.server_side_apply(body=changed, namespace=NS, field_manager="m", dry_run="All")
    assert out.data.a == "2"
    out = cms.patch(
        name="d",
        namespace=NS,
        body={"data": {"a": "3"}},
        dry_run="All",
        content_type="application/merge-patch+json",
    )
    assert out.data.a == "3"
    assert out.metadata.generation == 2
    assert before is not None
    replaced = {**before, "data": {"a": "4"}}
    out = cms.replace(body=replaced, namespace=NS, dry_run="All")
    assert out.data.a == "4"
    assert out.metadata.resourceVersion == before["metadata"]["resourceVersion"]
    cms.delete(name="d", namespace=NS, dry_run="All")
    assert fake_kube.get_object("configmaps", "d") == before


def test_deployment_controller(fake_kube: FakeKubeServer, fake_kube_api_client: Any) -> None:
    apps = k8s.AppsV1Api(fake_kube_api_client)
    apps.create_namespaced_deployment(NS, deployment(replicas=3))

    def rolled_out() -> Any:
        dep = apps.read_namespaced_deployment("app", NS)
        conds = {c.type: c for c in (dep.status and dep.status.conditions) or []}
        done = conds.get("Progressing") and conds["Progressing"].reason == "NewReplicaSetAvailable"
        return dep if done else None

    dep = fake_kube.wait_for(rolled_out)
    assert dep.status.observed_generation == 1
    assert (
        dep.status.replicas,
        dep.status.updated_replicas,
        dep.status.ready_replicas,
        dep.status.available_replicas,
    ) == (3, 3, 3, 3)
    assert {c.type: c.status for c in dep.status.conditions} == {
        "Available": "True",
        "Progressing": "True",
    }

    [rs] = apps.list_namespaced_replica_set(NS).items
    hash_ = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"app-{hash_}"
    assert rs.metadata.owner_references[0].uid == dep.metadata.uid
    pods = k8s.CoreV1Api(fake_kube_api_client).list_namespaced_pod(NS).items
    assert len(pods) == 3
    for pod in pods:
        assert pod.metadata.labels == {"app": "app", "pod-template-hash": hash_}
        assert pod.metadata.annotations == {"mlgitops/model": "v1"}
        assert pod.spec.containers[0].image == "registry/app:v1"
        assert pod.metadata.owner_references[0].name == rs.metadata.name
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"

    apps.patch_namespaced_deployment("app", NS, {"spec": {"replicas": 1}})
    fake_kube.wait_for(lambda: len(fake_kube.list_objects("pods", NS)) == 1)

    # While a new pod is not yet ready the rollout reports ReplicaSetUpdated.
    fake_kube.controller.ready_delay = 1.0
    apps.patch_namespaced_deployment(
        "app", NS, {"spec": {"template": {"metadata": {"annotations": {"mlgitops/model": "v2"}}}}}
    )

    def progressing() -> Any:
        dep = apps.read_namespaced_deployment("app", NS)
        conds = {c.type: c.reason for c in dep.status.conditions}
        return dep.status.observed_generation == 3 and conds["Progressing"] == "ReplicaSetUpdated"

    fake_kube.wait_for(progressing)
    fake_kube.wait_for(rolled_out)

    apps.delete_namespaced_deployment("app", NS)
    assert fake_kube.list_objects("replicasets", NS) == []
    assert fake_kube.list_objects("pods", NS) == []


def test_rollback_to_the_old_replicaset_keeps_the_stale_deadline_until_progress(
    fake_kube: FakeKubeServer, fake_kube_api_client: Any
) -> None:
    """As the real controller: the failed rollout's condition stays until the old pods go."""
    apps = k8s.AppsV1Api(fake_kube_api_client)
    apps.create_namespaced_deployment(NS, deployment(replicas=1, deadline=30))
    fake_kube.wait_for_rollout("app", NS)
    [good] = fake_kube.list_objects("replicasets", NS)
    fake_kube.fail_image("registry/app:bad")
    bad_template = {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "image": "registry/app:bad"}]}}}}  # fmt: skip
    apps.patch_namespaced_deployment("app", NS, bad_template)
    timed_out = fake_kube.wait_for_rollout("app", NS)
    [bad] = [rs for rs in fake_kube.list_objects("replicasets", NS) if rs != good]
    stale = {c["type"]: c for c in timed_out["status"]["conditions"]}["Progressing"]
    assert stale["reason"] == "ProgressDeadlineExceeded"
    fake_kube.scale_down_delay = 1.0

    back = {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "image": "registry/app:v1"}]}}}}  # fmt: skip
    generation = apps.patch_namespaced_deployment("app", NS, back).metadata.generation

    def observed() -> Any:
        dep = fake_kube.get_object("deployments", "app", NS)
        return dep if dep and dep["status"]["observedGeneration"] == generation else None

    dep = fake_kube.wait_for(observed)
    progressing = {c["type"]: c for c in dep["status"]["conditions"]}["Progressing"]
    assert progressing == stale  # still naming the failed ReplicaSet, with its old times
    assert bad["metadata"]["name"] in progressing["message"]

    def progressed() -> Any:
        dep = fake_kube.get_object("deployments", "app", NS) or {}
        cond = {c["type"]: c for c in dep["status"]["conditions"]}["Progressing"]
        return cond if cond["reason"] != "ProgressDeadlineExceeded" else None

    progressing = fake_kube.wait_for(progressed, timeout=10)
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")
    assert good["metadata"]["name"] in progressing["message"]
    assert len(fake_kube.list_objects("pods", NS)) == 1


def test_failed_rollout_via_python_client(
    fake_kube: FakeKubeServer, fake_kube_api_client: Any
) -> None:
    fake_kube.fail_image("registry/app:bad")
    apps = k8s.AppsV1Api(fake_kube_api_client)
    apps.create_namespaced_deployment(NS, deployment(image="registry/app:bad", deadline=30))

    def timed_out() -> bool:
        dep = apps.read_namespaced_deployment("app", NS)
        conds = {c.type: c for c in (dep.status and dep.status.conditions) or []}
        cond = conds.get("Progressing")
        return bool(cond and cond.status == "False" and cond.reason == "ProgressDeadlineExceeded")

    fake_kube.wait_for(timed_out, timeout=10)
    dep = apps.read_namespaced_deployment("app", NS)
    assert dep.status.unavailable_replicas == 2
    assert not dep.status.available_replicas
    pods = k8s.CoreV1Api(fake_kube_api_client).list_namespaced_pod(NS).items
    assert {p.status.container_statuses[0].state.waiting.reason for p in pods} == {
        "CrashLoopBackOff"
    }

    # An image that cannot be pulled keeps its pods Pending.
    fake_kube.fail_image(lambda image: image.endswith(":missing"), reason="ImagePullBackOff")
    apps.create_namespaced_deployment(NS, deployment("other", image="registry/app:missing"))

    def pull_failures() -> list[Any]:
        pods = k8s.CoreV1Api(fake_kube_api_client).list_namespaced_pod(
            NS, label_selector="app=other"
        )
        return [
            p
            for p in pods.items
            if p.status.container_statuses
            and p.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
        ]

    pod = fake_kube.wait_for(pull_failures)[0]
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].restart_count == 0


def test_scale_deletecollection_and_expired_watch(
    fake_kube: FakeKubeServer, fake_kube_api_client: Any
) -> None:
    apps = k8s.AppsV1Api(fake_kube_api_client)
    core = k8s.CoreV1Api(fake_kube_api_client)
    apps.create_namespaced_deployment(NS, deployment(replicas=1))
    assert apps.read_namespaced_deployment_scale("app", NS).spec.replicas == 1
    apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 3}})
    dep = fake_kube.wait_for_rollout("app")
    assert dep["status"]["readyReplicas"] == 3
    assert dep["status"]["conditions"][1]["reason"] == "NewReplicaSetAvailable"

    for name, tier in [("a", "web"), ("b", "web"), ("c", "db")]:
        core.create_namespaced_config_map(
            NS, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name, labels={"tier": tier}))
        )
    core.delete_collection_namespaced_config_map(NS, label_selector="tier=web")
    assert [cm["metadata"]["name"] for cm in fake_kube.list_objects("configmaps", NS)] == ["c"]

    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(NS, label_selector="tier in web")
    assert bad.value.status == 400

    old_rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="d")))
    fake_kube.reset()  # drops the watch history
    with httpx.Client(timeout=10) as http:
        resp = http.get(
            f"{fake_kube.url}/api/v1/namespaces/{NS}/configmaps",
            params={
                "watch": "true",
                "resourceVersion": str(int(old_rv) - 1),
                "timeoutSeconds": "1",
            },
        )
    [event] = [json.loads(line) for line in resp.text.splitlines()]
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


def test_control_surface(fake_kube: FakeKubeServer) -> None:
    assert fake_kube.url.startswith("http://127.0.0.1:")
    assert fake_kube.kubeconfig_path is not None
    config = yaml.safe_load(fake_kube.kubeconfig_path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == fake_kube.url
    loaded = k8s.Configuration()
    kube_config.load_kube_config(
        config_file=str(fake_kube.kubeconfig_path), client_configuration=loaded
    )
    assert loaded.host == fake_kube.url

    fake_kube.put_object(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}}
    )
    with httpx.Client(base_url=fake_kube.url, timeout=10) as http:
        assert http.get("/api/v1/namespaces/default/secrets/s").json()["data"] == {"k": "dg=="}
        assert http.get("/api/v1/namespaces/default/secrets").status_code == 200
        assert http.get("/version").json()["gitVersion"].startswith("v1.37")
        assert http.get("/openapi/v3").status_code == 200
        assert http.get("/openapi/v2").json()["swagger"] == "2.0"
        assert http.get("/apis/nope/v1").status_code == 404
        # Aggregated discovery is declined: plain JSON, which clients fall back on.
        aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        groups = http.get("/apis", headers={"Accept": f"{aggregated},application/json"})
        assert groups.headers["content-type"] == "application/json"
        assert groups.json()["kind"] == "APIGroupList"
    assert fake_kube.count_requests(verb="get", resource="secrets") == 1
    assert fake_kube.count_requests(verb="list", path=r"/secrets$") == 1
    assert fake_kube.count_requests(method="GET") == 7

    fake_kube.reset()
    assert fake_kube.get_object("secrets", "s") is None
    assert fake_kube.requests == []
    assert fake_kube.get_object("namespaces", "default") is not None


def test_stop_releases_threads_and_watches() -> None:
    before = {t.name for t in threading.enumerate()}
    server = FakeKubeServer().start()
    results: list[int] = []

    def long_watch() -> None:
        with (
            httpx.Client(timeout=30) as http,
            http.stream(
                "GET", f"{server.url}/api/v1/namespaces/default/pods", params={"watch": "true"}
            ) as resp,
        ):
            results.append(resp.status_code)
            for _ in resp.iter_lines():
                pass

    watcher = threading.Thread(target=long_watch)
    watcher.start()
    server.wait_for(lambda: server.count_requests(verb="watch") == 1)
    idle = httpx.Client(timeout=30)  # an idle keep-alive connection
    assert idle.get(f"{server.url}/version").status_code == 200
    server.stop()
    watcher.join(timeout=10)
    idle.close()
    assert not watcher.is_alive()
    assert results == [200]
    leaked = {t.name for t in threading.enumerate()} - before
    assert not [name for name in leaked if "fake-kube" in name], leaked


def test_restart_after_stop_keeps_objects() -> None:
    with FakeKubeServer(ready_delay=0.05) as server:
        server.put_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k"}})
    server.start()
    try:
        with httpx.Client(timeout=10) as http:
            resp = http.get(f"{server.url}/api/v1/namespaces/default/configmaps/k")
        assert resp.status_code == 200
        assert server.ready_delay == 0.05
    finally:
        server.stop()


# ------------------------------------------------------------------ the registry view


def _image_ids(fake: FakeKubeServer, app: str) -> set[str]:
    pods = fake.list_objects("pods", NS, f"app={app}")
    return {p["status"]["containerStatuses"][0]["imageID"] for p in pods}


def test_pods_report_the_digest_they_pulled_and_keep_it(
    fake_kube: FakeKubeServer, fake_kube_api_client: Any
) -> None:
    apps = k8s.AppsV1Api(fake_kube_api_client)
    first = fake_kube.registry.push("registry/app:v1", "sha256:" + "1" * 64)
    apps.create_namespaced_deployment(NS, deployment(replicas=1))
    fake_kube.wait_for_rollout("app")
    assert _image_ids(fake_kube, "app") == {f"registry/app@{first}"}

    # The tag is pushed again: the running pod keeps its bytes, a new pod pulls the new ones.
    second = fake_kube.registry.push("registry/app:v1", "sha256:" + "2" * 64)
    apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 2}})
    fake_kube.wait_for(lambda: len(_image_ids(fake_kube, "app") - {""}) == 2)
    assert _image_ids(fake_kube, "app") == {f"registry/app@{first}", f"registry/app@{second}"}

    # Pinned: exactly that digest, whatever the tag names now; Docker's form on request.
    fake_kube.registry.image_id_format = "docker"
    pinned = deployment("pinned", image=f"registry/app:v1@{first}", replicas=1)
    apps.create_namespaced_deployment(NS, pinned)
    fake_kube.wait_for_rollout("pinned")
    assert _image_ids(fake_kube, "pinned") == {f"docker-pullable://registry/app@{first}"}


def _waiting(fake: FakeKubeServer, app: str) -> dict[str, Any]:
    """The first container's waiting state of the first pod of `app` ({} if none)."""
    pods = fake.list_objects("pods", NS, f"app={app}")
    statuses = pods[0]["status"].get("containerStatuses") or [{}] if pods else [{}]
    return (statuses[0].get("state") or {}).get("waiting") or {}


def test_a_tag_nobody_pushed_gets_a_stable_digest_and_unknown_pins_fail(
    fake_kube: FakeKubeServer, fake_kube_api_client: Any
) -> None:
    apps = k8s.AppsV1Api(fake_kube_api_client)
    apps.create_namespaced_deployment(NS, deployment(image="registry/app:any", replicas=1))
    fake_kube.wait_for_rollout("app")
    [derived] = _image_ids(fake_kube, "app")
    assert derived == f"registry/app@{fake_kube.registry.digest_of('registry/app:any')}"

    # An image the node has without a repo digest: the bare config digest.
    fake_kube.registry.image_id_format = "config"
    digest = fake_kube.registry.push("registry/app:cfg", config="sha256:" + "c" * 64)
    apps.create_namespaced_deployment(NS, deployment("cfg", image="registry/app:cfg", replicas=1))
    fake_kube.wait_for_rollout("cfg")
    assert _image_ids(fake_kube, "cfg") == {"sha256:" + "c" * 64}
    assert digest.startswith("sha256:")

    unknown = "registry/app:any@sha256:" + "9" * 64
    apps.create_namespaced_deployment(NS, deployment("ghost", image=unknown, replicas=1))
    waiting = fake_kube.wait_for(lambda: _waiting(fake_kube, "ghost").get("message"))
    assert _waiting(fake_kube, "ghost")["reason"] == "ErrImagePull"
    assert "manifest unknown" in waiting

    fake_kube.registry.implicit = False  # only what was pushed can be pulled
    apps.create_namespaced_deployment(
        NS, deployment("strict", image="registry/app:new", replicas=1)
    )
    fake_kube.wait_for(lambda: _waiting(fake_kube, "strict").get("reason") == "ErrImagePull")


# RBAC -----------------------------------------------------------------------------------


def _rbac_server(fake_kube: FakeKubeServer, rules: list[dict[str, Any]]) -> httpx.Client:
    """RBAC on, ServiceAccount `default/ci` bound to a Role with `rules`; a client as it."""
    fake_kube.put_object(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ci", "namespace": NS}}
    )
    fake_kube.put_object(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "ci", "namespace": NS}, "rules": rules}
    )  # fmt: skip
    fake_kube.put_object(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "ci", "namespace": NS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ci"},
         "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}
    )  # fmt: skip
    fake_kube.enable_rbac()
    token = fake_kube.service_account_token(NS, "ci")
    return httpx.Client(base_url=fake_kube.url, headers={"Authorization": f"Bearer {token}"})


CM = f"/api/v1/namespaces/{NS}/configmaps"


def _cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


def test_rbac_resource_names_limit_every_verb_but_a_post_create(fake_kube: FakeKubeServer) -> None:
    named = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"],
             "verbs": ["get", "create", "update", "patch", "list"]}  # fmt: skip
    http = _rbac_server(fake_kube, [named])
    # A POST has no name when it is authorized: a rule with names never allows it.
    assert http.post(CM, json=_cm("mine")).status_code == 403
    # Server-side apply creates with the name known: allowed for "mine" only.
    apply = {"Content-Type": "application/apply-patch+yaml"}
    body = json.dumps(_cm("mine"))
    assert http.patch(f"{CM}/mine?fieldManager=t", content=body, headers=apply).status_code == 201
    other = json.dumps(_cm("other"))
    refused = http.patch(f"{CM}/other?fieldManager=t", content=other, headers=apply)
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        'configmaps "other" is forbidden: User "system:serviceaccount:default:ci" cannot patch '
        'resource "configmaps" in API group "" in the namespace "default"'
    )
    assert http.get(f"{CM}/mine").status_code == 200
    # A list is allowed by name only when narrowed to that name.
    assert http.get(CM).status_code == 403
    assert http.get(CM, params={"fieldSelector": "metadata.name=mine"}).status_code == 200
    # Discovery is open to every authenticated user; nothing is open without a token.
    assert http.get("/api/v1").status_code == 200
    assert httpx.get(f"{fake_kube.url}/api/v1").status_code == 401


def test_rbac_create_by_apply_needs_create_too(fake_kube: FakeKubeServer) -> None:
    patch_only = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"],
                  "verbs": ["get", "patch"]}  # fmt: skip
    http = _rbac_server(fake_kube, [patch_only])
    apply = {"Content-Type": "application/apply-patch+yaml"}
    body = json.dumps(_cm("mine"))
    refused = http.patch(f"{CM}/mine?fieldManager=t", content=body, headers=apply)
    assert refused.status_code == 403
    assert "cannot create resource" in refused.json()["message"]
    fake_kube.put_object({**_cm("mine"), "metadata": {"name": "mine", "namespace": NS}})
    assert http.patch(f"{CM}/mine?fieldManager=t", content=body, headers=apply).status_code == 200


def test_rbac_the_admin_token_bypasses_and_other_namespaces_are_closed(
    fake_kube: FakeKubeServer,
) -> None:
    anything = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    http = _rbac_server(fake_kube, [anything])
    assert http.get(CM).status_code == 200
    # A Role binds in its own namespace only; cluster-scoped kinds need ClusterRoles.
    assert http.get("/api/v1/namespaces/kube-system/configmaps").status_code == 403
    assert http.get("/api/v1/namespaces").status_code == 403
    admin = httpx.Client(base_url=fake_kube.url, headers={"Authorization": "Bearer fake-token"})
    assert admin.get("/api/v1/namespaces").status_code == 200
