"""Every kustomization under k8s/ renders with `kubectl kustomize`, passes
`kubernetes-validate --strict` at a pinned Kubernetes version, and keeps the contracts the
deploy command and the package stage rely on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgitops.config import load_params
from mlgitops.release import ANNOTATION_GIT_COMMIT, CONTAINER_NAME

pytestmark = pytest.mark.timeout(120)

PROJECT = Path(__file__).resolve().parents[2]
K8S = PROJECT / "k8s"
# Pinned: the oldest Kubernetes minor we support; bump deliberately, not with the package.
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
BOOTSTRAPS = sorted(p.parent.name for p in (K8S / "bootstrap").glob("*/kustomization.yaml"))
DEPRECATED_FIELDS = {
    "commonLabels", "bases", "patchesStrategicMerge", "patchesJson6902", "vars", "imageTags",
}  # fmt: skip


def _beside_python(name: str) -> str | None:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else shutil.which(name)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = _beside_python("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [obj] = [o for o in objects if o["kind"] == kind]
    return obj


def test_there_are_environments() -> None:
    assert OVERLAYS == ["production", "staging"]
    assert BOOTSTRAPS == OVERLAYS


@pytest.mark.parametrize("directory", [f"overlays/{e}" for e in OVERLAYS]
                         + [f"bootstrap/{e}" for e in BOOTSTRAPS])  # fmt: skip
def test_renders_and_validates_strictly(directory: str, tmp_path: Path) -> None:
    objects = kustomize(K8S / directory)
    assert objects
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    validator = _beside_python("kubernetes-validate")
    assert validator is not None, "kubernetes-validate is a dev dependency"
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed" in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", sorted(K8S.rglob("kustomization.yaml")), ids=str)
def test_kustomizations_use_current_fields(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    assert not DEPRECATED_FIELDS & set(spec), path


def test_base_lists_the_release_patch() -> None:
    spec = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    assert {"path": "release.yaml"} in spec["patches"]
    patch = yaml.safe_load((K8S / "base/release.yaml").read_text())
    params = load_params(PROJECT / "params.yaml")
    assert patch["kind"] == "Deployment"
    assert patch["metadata"]["name"] == params.package.bento_name
    [container] = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == CONTAINER_NAME
    assert container["image"].startswith(params.package.image_repository + ":")


@pytest.mark.parametrize("env", OVERLAYS)
def test_overlay_contract(env: str) -> None:
    objects = kustomize(K8S / "overlays" / env)
    params = load_params(PROJECT / "params.yaml")
    name = params.package.bento_name
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["Deployment", "Service", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"])  # fmt: skip
    assert {o["metadata"]["namespace"] for o in objects} == {f"mlgitops-{env}"}
    assert {o["metadata"]["name"] for o in objects} == {name}

    deployment = by_kind(objects, "Deployment")
    spec = deployment["spec"]
    # The HorizontalPodAutoscaler owns the replica count.
    assert "replicas" not in spec
    assert spec["progressDeadlineSeconds"] > 0
    assert spec["revisionHistoryLimit"] > 0
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert "app.kubernetes.io/version" in labels
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == by_kind(objects, "ServiceAccount")["metadata"]["name"]
    [container] = pod["containers"]
    assert container["name"] == CONTAINER_NAME
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    env = {e["name"]: e for e in container["env"]}
    assert env["MLGITOPS_GIT_COMMIT"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        f"metadata.annotations['{ANNOTATION_GIT_COMMIT}']"
    )
    assert env["MLGITOPS_FEEDBACK_LOG"]["value"] == "stdout"  # the root filesystem is read-only
    # The credentials come from a Secret the pod cannot start without (never from Git).
    [credentials] = [v for v in pod["volumes"] if "secret" in v]
    assert credentials["secret"] == {
        "secretName": "fraud-detector-credentials",
        "optional": False,
        "defaultMode": 0o440,
    }
    [mount] = [m for m in container["volumeMounts"] if m["name"] == credentials["name"]]
    assert mount["readOnly"] is True
    assert env["MLGITOPS_FEEDBACK_TOKEN_FILE"]["value"] == f"{mount['mountPath']}/feedback-token"
    assert env["MLGITOPS_REQUEST_ID_KEY_FILE"]["value"] == f"{mount['mountPath']}/request-id-key"
    assert "MLGITOPS_PREDICT_TOKEN_FILE" not in env  # opt-in: k8s/components/predict-token
    annotations = spec["template"]["metadata"]["annotations"]
    for key in ("bento-tag", "model-hash", "data-hash"):
        assert f"mlgitops.io/{key}" in annotations

    service = by_kind(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = by_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": name}  # fmt: skip
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = by_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    policy = by_kind(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy_peers(policy) == DEFAULT_PEERS


# Who may reach the server by default: (namespace, pod labels) of the ingress controller and of
# Prometheus (docs/deploy.md, "Network policy").
DEFAULT_PEERS = {
    ("ingress-nginx", (("app.kubernetes.io/name", "ingress-nginx"),)),
    ("monitoring", (("app.kubernetes.io/name", "prometheus"),)),
}
DNS = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def policy_peers(policy: dict[str, Any]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The (namespace, pod labels) admitted, after checking the policy's shape: both
    directions restricted, every peer a namespace AND pods in it (never either alone, never
    an IP block), on the service port only, and egress to the cluster DNS only."""
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"] == [DNS]
    peers = set()
    for rule in spec["ingress"]:
        assert rule["ports"] == [{"protocol": "TCP", "port": 3000}]
        for peer in rule["from"]:
            assert set(peer) == {"namespaceSelector", "podSelector"}, peer
            assert set(peer["namespaceSelector"]) == {"matchLabels"}
            [(key, namespace)] = peer["namespaceSelector"]["matchLabels"].items()
            assert key == "kubernetes.io/metadata.name"
            pods = peer["podSelector"].get("matchLabels") or {}
            assert pods, "an empty podSelector admits every pod of the namespace"
            peers.add((namespace, tuple(sorted(pods.items()))))
    return peers


# The overlay patch docs/deploy.md shows for a cluster whose ingress controller and Prometheus
# run elsewhere; applied to a copy of an overlay, it must render, validate and take effect.
DOCUMENTED_PATCH = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: fraud-detector
spec:
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: traefik
          podSelector:
            matchLabels:
              app.kubernetes.io/name: traefik
      ports:
        - protocol: TCP
          port: 3000
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: observability
          podSelector:
            matchLabels:
              app.kubernetes.io/name: prometheus
      ports:
        - protocol: TCP
          port: 3000
"""


def test_the_documented_network_policy_patch_adapts_an_overlay(tmp_path: Path) -> None:
    doc = (PROJECT / "docs" / "deploy.md").read_text()
    assert DOCUMENTED_PATCH in doc, "docs/deploy.md shows another patch than the test applies"
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s, ignore=shutil.ignore_patterns("argocd", "monitoring"))
    overlay = k8s / "overlays" / "production"
    (overlay / "networkpolicy.yaml").write_text(DOCUMENTED_PATCH)
    spec = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    spec["patches"].append({"path": "networkpolicy.yaml"})
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    objects = kustomize(overlay)
    assert policy_peers(by_kind(objects, "NetworkPolicy")) == {
        ("traefik", (("app.kubernetes.io/name", "traefik"),)),
        ("observability", (("app.kubernetes.io/name", "prometheus"),)),
    }
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    validator = _beside_python("kubernetes-validate")
    assert validator is not None
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_production_is_bigger_than_staging() -> None:
    def sizes(env: str) -> tuple[int, str]:
        objects = kustomize(K8S / "overlays" / env)
        hpa = by_kind(objects, "HorizontalPodAutoscaler")
        container = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return hpa["spec"]["minReplicas"], container["resources"]["requests"]["memory"]

    assert sizes("staging") != sizes("production")
    assert sizes("production")[0] > sizes("staging")[0]


def _role_rules() -> list[dict[str, Any]]:
    objects = kustomize(K8S / "bootstrap" / "staging")
    role = by_kind(objects, "Role")
    binding = by_kind(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == by_kind(objects, "ServiceAccount")["metadata"]["name"]
    for rule in role["rules"]:
        assert "*" not in {*rule["apiGroups"], *rule["resources"], *rule["verbs"]}, rule
    return role["rules"]


def _grants(rules: list[dict[str, Any]], group: str, resource: str) -> list[tuple[set, set]]:
    """(verbs, resourceNames) of each rule on `group`/`resource` (no names: any object)."""
    return [
        (set(rule["verbs"]), set(rule.get("resourceNames") or []))
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
    ]


PLURALS = {
    "Deployment": ("apps", "deployments"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
}


@pytest.mark.parametrize("env", OVERLAYS)
def test_the_deployer_may_write_exactly_the_objects_its_overlay_renders(env: str) -> None:
    from mlgitops.deploy.history import history_name
    from mlgitops.deploy.lock import lease_name

    rules = _role_rules()
    objects = kustomize(K8S / "overlays" / env)
    assert {o["kind"] for o in objects} == set(PLURALS)
    for obj in objects:
        grants = _grants(rules, *PLURALS[obj["kind"]])
        # Every rule on an applied kind names its objects: no other Deployment, Service...
        assert grants, obj["kind"]
        assert all(names for _, names in grants), (obj["kind"], grants)
        mine = [verbs for verbs, names in grants if obj["metadata"]["name"] in names]
        allowed = set().union(*mine)
        # Server-side apply: patch, and create (with the name) when the object is new.
        assert allowed == {"get", "create", "patch"}, (obj["kind"], allowed)
    name = by_kind(objects, "Deployment")["metadata"]["name"]
    # Created by POST, which has no name when authorized: an unnamed create, the rest by name.
    assert _grants(rules, "", "configmaps") == [
        ({"create"}, set()),
        ({"get", "update"}, {history_name(name)}),
    ]
    assert _grants(rules, "coordination.k8s.io", "leases") == [
        ({"create"}, set()),
        ({"get", "update", "delete"}, {lease_name(name)}),
    ]


def test_deployer_role_reads_the_rollout_and_nothing_else() -> None:
    rules = _role_rules()
    # ReplicaSets and pods have generated names: read by label, never written.
    assert _grants(rules, "apps", "replicasets") == [({"get", "list", "watch"}, set())]
    assert _grants(rules, "", "pods") == [({"get", "list", "watch"}, set())]
    covered = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert covered == {*PLURALS.values(), ("apps", "replicasets"), ("", "pods"),
                       ("", "configmaps"), ("coordination.k8s.io", "leases")}  # fmt: skip
    deletes = [rule for rule in rules if "delete" in rule["verbs"]]
    assert [rule["resources"] for rule in deletes] == [["leases"]]


def test_the_predict_token_component_renders_and_validates(tmp_path: Path) -> None:
    """An overlay opting in to k8s/components/predict-token: the server reads the Secret's
    predict-token, and the result still passes kubernetes-validate --strict."""
    import os

    overlay = tmp_path / "overlay"
    overlay.mkdir()
    production = os.path.relpath(K8S / "overlays" / "production", overlay)
    component = os.path.relpath(K8S / "components" / "predict-token", overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [production],
                "components": [component],
            }
        )
    )
    objects = kustomize(overlay)
    pod = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "credentials"]
    assert env["MLGITOPS_PREDICT_TOKEN_FILE"] == f"{mount['mountPath']}/predict-token"
    assert env["MLGITOPS_FEEDBACK_TOKEN_FILE"] == f"{mount['mountPath']}/feedback-token"
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    validator = _beside_python("kubernetes-validate")
    assert validator is not None
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
