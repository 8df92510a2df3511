"""The admission policy (k8s/policy) and the Argo CD AppProject (k8s/argocd/project) validate,
and hold the restrictions they exist for: images by digest from the configured repository only,
in the environments' namespaces; Argo CD limited to this repository, these namespaces and the
kinds the overlays render."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlgitops.config import load_params
from tests.k8s.test_manifests import (
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    PROJECT,
    _beside_python,
    kustomize,
)

pytestmark = pytest.mark.timeout(120)

APPLICATIONS = sorted((K8S / "argocd").glob("*.yaml"))
APPPROJECT = K8S / "argocd" / "project" / "mlgitops.yaml"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _policy() -> tuple[dict, dict]:
    objects = kustomize(K8S / "policy")
    [policy] = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"]
    [binding] = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    return policy, binding


def test_the_admission_policy_validates_strictly(tmp_path: Path) -> None:
    rendered = tmp_path / "policy.yaml"
    rendered.write_text(yaml.safe_dump_all(kustomize(K8S / "policy")))
    validator = _beside_python("kubernetes-validate")
    assert validator is not None, "kubernetes-validate is a dev dependency"
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == 2, proc.stdout


def _image_pattern(policy: dict) -> re.Pattern:
    [validation] = policy["spec"]["validations"]
    [pattern] = re.findall(r"image\.matches\('(.*?)'\)", validation["expression"])
    # CEL string literal escapes (\\.) to the RE2 pattern, which Python's re reads alike here.
    return re.compile(pattern.encode().decode("unicode_escape"))


def test_only_the_configured_repository_by_digest_is_admitted() -> None:
    policy, binding = _policy()
    repository = load_params(PROJECT / "params.yaml").package.image_repository
    pattern = _image_pattern(policy)
    assert pattern.fullmatch(f"{repository}@{DIGEST}")
    for image in (
        f"{repository}:f4a446ed7cad",  # a mutable tag, as the release patch pins today
        f"{repository}:f4a446ed7cad@{DIGEST}",  # a tag that could be read instead of the digest
        f"{repository}@sha256:abc",  # not a whole digest
        f"{repository}-evil@{DIGEST}",
        f"evil.example.com/{repository}@{DIGEST}",
        f"{repository.replace('.', 'x', 1)}@{DIGEST}",  # the dots are literal
        f"{repository}@{DIGEST}\nx",
    ):
        assert not pattern.fullmatch(image), image
        assert not pattern.search(image), image
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert "Deny" in binding["spec"]["validationActions"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    # Every container kind of a Pod and of a Deployment's template is checked.
    images = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}["images"]
    for field in ("containers", "initContainers", "ephemeralContainers"):
        assert f"variables.podSpec.{field}" in images
    kinds = {r["resources"][0] for r in policy["spec"]["matchConstraints"]["resourceRules"]}
    assert kinds == {"pods", "deployments"}


def test_the_policy_binds_the_namespaces_of_every_environment() -> None:
    _, binding = _policy()
    [selector] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    namespaces = {
        yaml.safe_load((K8S / "overlays" / env / "kustomization.yaml").read_text())["namespace"]
        for env in OVERLAYS
    }
    assert selector["key"] == "kubernetes.io/metadata.name"
    assert selector["operator"] == "In"
    assert set(selector["values"]) == namespaces
    assert "objectSelector" not in binding["spec"]["matchResources"]


# The AppProject fields Argo CD's CRD (argoproj.io/v1alpha1 AppProjectSpec) defines that this
# project uses; anything else is a typo Argo CD would drop.
_GROUP_KIND = {
    "type": "object",
    "properties": {"group": {"type": "string"}, "kind": {"type": "string", "minLength": 1}},
    "required": ["group", "kind"],
    "additionalProperties": False,
}
APPPROJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "argoproj.io/v1alpha1"},
        "kind": {"const": "AppProject"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["sourceRepos", "destinations", "clusterResourceWhitelist"],
            "properties": {
                "description": {"type": "string"},
                "sourceRepos": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "destinations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "server": {"type": "string"},
                            "namespace": {"type": "string"},
                            "name": {"type": "string"},
                        },
                    },
                },
                "clusterResourceWhitelist": {"type": "array", "items": _GROUP_KIND},
                "namespaceResourceWhitelist": {"type": "array", "items": _GROUP_KIND},
                "namespaceResourceBlacklist": {"type": "array", "items": _GROUP_KIND},
                "orphanedResources": {
                    "type": "object",
                    "properties": {"warn": {"type": "boolean"}},
                    "additionalProperties": False,
                },
            },
        },
    },
}


def _applications() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in APPLICATIONS]


def test_the_appproject_has_argo_cds_shape() -> None:
    project = yaml.safe_load(APPPROJECT.read_text())
    jsonschema.validate(project, APPPROJECT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**project, "spec": {**project["spec"], "sourceRepo": []}}, APPPROJECT_SCHEMA
        )


def test_the_appproject_limits_argo_cd_to_this_app() -> None:
    project = yaml.safe_load(APPPROJECT.read_text())
    spec = project["spec"]
    apps = _applications()
    assert {app["spec"]["project"] for app in apps} == {project["metadata"]["name"]}
    assert project["metadata"]["namespace"] == apps[0]["metadata"]["namespace"] == "argocd"
    assert spec["sourceRepos"] == sorted({app["spec"]["source"]["repoURL"] for app in apps})
    assert "*" not in "".join(spec["sourceRepos"])
    destinations = [app["spec"]["destination"] for app in apps]
    assert sorted(spec["destinations"], key=str) == sorted(destinations, key=str)
    assert all("*" not in d["namespace"] + d["server"] for d in spec["destinations"])
    assert spec["clusterResourceWhitelist"] == []
    rendered = {
        (obj["apiVersion"].rpartition("/")[0], obj["kind"])
        for env in OVERLAYS
        for obj in kustomize(K8S / "overlays" / env)
    }
    allowed = {(kind["group"], kind["kind"]) for kind in spec["namespaceResourceWhitelist"]}
    assert allowed == rendered
    assert not {"Secret", "Role", "RoleBinding"} & {kind for _, kind in allowed}
