"""k8s/dask: the DaskCluster validates against the dask-kubernetes operator's own CRD schema
(vendored in tests/support/crds/), the built-in kinds pass `kubernetes-validate --strict`, and
the pieces agree with each other: the monitor's scheduler address, the ports the NetworkPolicy
admits, the volumes, the exit codes, the pipeline image's user."""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mlgitops.errors import MonitoringAlertError, MonitoringInputError
from tests.k8s.test_manifests import (
    DNS,
    K8S,
    KUBERNETES_VERSION,
    PROJECT,
    _beside_python,
    kustomize,
)

pytestmark = pytest.mark.timeout(120)

DASK = K8S / "dask"
CRD = PROJECT / "tests" / "support" / "crds" / "daskcluster.yaml"
CRD_VERSION = "2026.3.0"
BUILTIN_KINDS = {"ServiceAccount", "ConfigMap", "CronJob", "NetworkPolicy"}


@cache
def rendered() -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(DASK))


def objects() -> list[dict[str, Any]]:
    return copy.deepcopy(list(rendered()))


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    [obj] = [o for o in objects() if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return obj


# ---------------------------------------------------------------------------- the CRD schema


@cache
def _crd() -> dict[str, Any]:
    # Read only; cached because the file is 280 kB of YAML.
    return yaml.safe_load(CRD.read_text())


def strict(schema: Any) -> Any:
    """The schema as the API server applies it with field validation Strict (kubectl's
    default): a field an object schema does not declare is an error, not silently pruned.
    Objects that keep unknown fields (x-kubernetes-preserve-unknown-fields) or are maps
    (additionalProperties) are left as they are."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _validator() -> jsonschema.protocols.Validator:
    [version] = [v for v in _crd()["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return cls(schema)


def crd_errors(obj: dict[str, Any]) -> list[str]:
    """Why the API server (with the operator's CRD installed) would refuse `obj`."""
    crd = _crd()
    errors = []
    group, names = crd["spec"]["group"], crd["spec"]["names"]
    served = {v["name"] for v in crd["spec"]["versions"] if v.get("served")}
    if obj.get("apiVersion") not in {f"{group}/{v}" for v in served}:
        errors.append(f"apiVersion {obj.get('apiVersion')!r}")
    if obj.get("kind") != names["kind"]:
        errors.append(f"kind {obj.get('kind')!r}")
    # apiVersion, kind and metadata are the API server's own; the CRD schema covers the rest.
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    for error in sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path)):
        errors.append(f"{'.'.join(map(str, error.absolute_path))}: {error.message}")
    return errors


def test_the_vendored_crd_is_the_upstream_file_unchanged() -> None:
    text = CRD.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    [recorded] = re.findall(r"^# sha256 of the upstream file.*: ([0-9a-f]{64})$", text, re.M)
    body = text.split("\n", len(header))[len(header)]
    assert hashlib.sha256(body.encode()).hexdigest() == recorded
    assert f"version {CRD_VERSION}" in text
    assert "BSD-3-Clause" in text
    assert _crd()["metadata"]["name"] == "daskclusters.kubernetes.dask.org"


def test_the_dask_cluster_validates_against_the_operators_crd() -> None:
    assert crd_errors(the("DaskCluster")) == []


# One mutation each of the kinds the schema must catch; each is a mistake that would otherwise
# reach the cluster (a misspelt pod field is dropped silently without Strict validation).
MUTATIONS = {
    "misspelt pod field": (
        lambda c: c["spec"]["worker"]["spec"].__setitem__("serviceAcountName", "x"),
        "serviceAcountName",
    ),
    "misspelt container field": (
        lambda c: c["spec"]["worker"]["spec"]["containers"][0].__setitem__("arg", ["worker"]),
        "'arg' was unexpected",
    ),
    "replicas as a string": (
        lambda c: c["spec"]["worker"].__setitem__("replicas", "4"),
        "worker.replicas",
    ),
    "no scheduler service": (
        lambda c: c["spec"]["scheduler"].pop("service"),
        "'service' is a required property",
    ),
    "no worker containers": (
        lambda c: c["spec"]["worker"]["spec"].pop("containers"),
        "'containers' is a required property",
    ),
    "a port number where the CRD takes a name": (
        lambda c: c["spec"]["scheduler"]["service"]["ports"][0].__setitem__("targetPort", 8786),
        "targetPort",
    ),
    "another API version": (lambda c: c.__setitem__("apiVersion", "kubernetes.dask.org/v2"), "v2"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_broken_dask_cluster_is_rejected(mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    cluster = the("DaskCluster")
    mutate(cluster)
    errors = crd_errors(cluster)
    assert errors, mutation
    assert any(expected in error for error in errors), errors


def validate_strictly(
    documents: list[dict[str, Any]], path: Path
) -> subprocess.CompletedProcess[str]:
    """`kubernetes-validate --strict` of `documents`, written to `path`, at our pinned version."""
    path.write_text(yaml.safe_dump_all(documents))
    validator = _beside_python("kubernetes-validate")
    assert validator is not None, "kubernetes-validate is a dev dependency"
    return subprocess.run(
        [validator, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_builtin_kinds_validate_strictly(tmp_path: Path) -> None:
    builtins = [o for o in objects() if o["kind"] != "DaskCluster"]
    assert {o["kind"] for o in builtins} == BUILTIN_KINDS
    proc = validate_strictly(builtins, tmp_path / "rendered.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == len(builtins), proc.stdout


def test_kubernetes_validate_catches_a_broken_cronjob(tmp_path: Path) -> None:
    cronjob = the("CronJob")
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["arg"] = []
    proc = validate_strictly([cronjob], tmp_path / "broken.yaml")
    assert proc.returncode != 0, proc.stdout


# ---------------------------------------------------------------------------- the contracts


def _args(container: dict[str, Any]) -> dict[str, str]:
    """`--flag value` pairs of a container's args."""
    args = container["args"]
    return {a: b for a, b in itertools.pairwise(args) if a.startswith("--")}


def _pods() -> dict[str, dict[str, Any]]:
    cluster = the("DaskCluster")["spec"]
    cronjob = the("CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    return {
        "scheduler": cluster["scheduler"]["spec"],
        "worker": cluster["worker"]["spec"],
        "monitor": cronjob["spec"],
    }


def _gib(quantity: str) -> float:
    units = {"Mi": 1 / 1024, "Gi": 1.0, "MiB": 1 / 1024, "GiB": 1.0}
    [(number, unit)] = re.findall(r"^(\d+(?:\.\d+)?)([A-Za-z]+)$", quantity)
    return float(number) * units[unit]


def test_everything_lands_in_one_namespace_and_calls_no_kubernetes_api() -> None:
    assert {o["metadata"]["namespace"] for o in objects()} == {"mlgitops-pipeline"}
    accounts = {o["metadata"]["name"]: o for o in objects() if o["kind"] == "ServiceAccount"}
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts.values())
    # No Role: neither Dask nor the monitor talks to the API server (the operator makes the pods).
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & {
        o["kind"] for o in objects()
    }
    for name, pod in _pods().items():
        assert pod["serviceAccountName"] in accounts, name
        assert pod["automountServiceAccountToken"] is False, name


def test_every_pod_runs_the_pipeline_image_locked_down() -> None:
    containerfile = (PROJECT / "src/mlgitops/image/Containerfile.pipeline").read_text()
    uid = int(re.search(r"^ARG PIPELINE_UID=(\d+)$", containerfile, re.MULTILINE).group(1))
    images = set()
    for name, pod in _pods().items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == uid, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        [container] = pod["containers"]
        images.add(container["image"])
        security = container["securityContext"]
        assert security["runAsUser"] == uid
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert {e["name"]: e.get("value") for e in container["env"]}["TMPDIR"] == "/tmp"
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    # Workers unpickle what the client sends: one image (the kustomization's `images` sets it).
    assert images == {"registry.example.com/mlgitops/pipeline:unreleased"}


def test_the_monitor_reaches_the_scheduler_the_operator_creates() -> None:
    cluster = the("DaskCluster")
    [scheduler] = cluster["spec"]["scheduler"]["spec"]["containers"]
    port = int(_args(scheduler)["--port"])
    service = cluster["spec"]["scheduler"]["service"]
    [comm] = [p for p in service["ports"] if p["name"] == "tcp-comm"]
    assert comm["port"] == port
    assert {"name": "tcp-comm", "containerPort": port, "protocol": "TCP"} in scheduler["ports"]
    # The operator's Service is <cluster>-scheduler, selecting its pods by these labels.
    assert service["selector"] == {
        "dask.org/cluster-name": cluster["metadata"]["name"],
        "dask.org/component": "scheduler",
    }
    [monitor] = _pods()["monitor"]["containers"]
    env = {e["name"]: e.get("value") for e in monitor["env"]}
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    assert env["MLGITOPS_DASK_SCHEDULER"] == f"tcp://{name}-scheduler.{namespace}.svc:{port}"
    # The image's params.yaml runs Dask in-process (engine.kind: local); the environment
    # overrides it (mlgitops.config.EngineConfig.with_environment).
    assert env["MLGITOPS_ENGINE"] == "scheduler"


def test_workers_are_sized_so_dask_spills_before_the_kernel_kills() -> None:
    [worker] = _pods()["worker"]["containers"]
    args = _args(worker)
    resources = worker["resources"]
    # Guaranteed memory: the worker is not the pod a node evicts under pressure.
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    dask_limit, container_limit = _gib(args["--memory-limit"]), _gib(resources["limits"]["memory"])
    assert 4 <= dask_limit < container_limit
    assert int(args["--nthreads"]) <= int(resources["limits"]["cpu"])
    assert args["--local-directory"] == "/scratch"
    scratch = [v for v in _pods()["worker"]["volumes"] if v["name"] == "scratch"]
    assert _gib(scratch[0]["emptyDir"]["sizeLimit"]) >= 2 * dask_limit
    assert the("DaskCluster")["spec"]["worker"]["replicas"] >= 2


def _admitted(rule: dict[str, Any]) -> set[int]:
    return {p["port"] for p in rule["ports"] if p["protocol"] == "TCP"}


def test_the_network_policy_admits_exactly_the_dask_ports() -> None:
    [scheduler] = _pods()["scheduler"]["containers"]
    [worker] = _pods()["worker"]["containers"]
    comm = {
        int(_args(scheduler)["--port"]),
        int(_args(worker)["--worker-port"]),
        int(_args(worker)["--nanny-port"]),
    }
    dashboards = {int(_args(c)["--dashboard-address"].lstrip(":")) for c in (scheduler, worker)}
    dask = the("NetworkPolicy", "mlgitops-dask")["spec"]
    assert dask["policyTypes"] == ["Ingress", "Egress"]
    cluster_pods = {"dask.org/cluster-name": the("DaskCluster")["metadata"]["name"]}
    assert dask["podSelector"]["matchLabels"] == cluster_pods
    peers, clients, prometheus = dask["ingress"]
    assert peers["from"] == [{"podSelector": {"matchLabels": cluster_pods}}]
    assert _admitted(peers) == comm
    client_label = {"mlgitops.io/dask-client": "true"}
    assert clients["from"] == [{"podSelector": {"matchLabels": client_label}}]
    assert _admitted(clients) == {int(_args(scheduler)["--port"])}
    [peer] = prometheus["from"]
    assert set(peer) == {"namespaceSelector", "podSelector"}
    assert _admitted(prometheus) == dashboards
    assert dask["egress"] == [{"to": peers["from"], "ports": peers["ports"]}, DNS]

    monitor = the("NetworkPolicy", "mlgitops-monitor")["spec"]
    template = the("CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    assert monitor["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert client_label.items() <= template["metadata"]["labels"].items()
    assert monitor["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in monitor  # nothing may connect to the monitor
    to_scheduler, dns = monitor["egress"]
    assert to_scheduler["to"] == [
        {"podSelector": {"matchLabels": {**cluster_pods, "dask.org/component": "scheduler"}}}
    ]
    assert _admitted(to_scheduler) == {int(_args(scheduler)["--port"])}
    assert dns == DNS


def test_the_monitor_cronjob_runs_mlgitops_monitor_on_logs_the_workers_see_too() -> None:
    cronjob = the("CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert container["args"][0] == "monitor"  # the image's entrypoint is `mlgitops`
    assert "command" not in container
    # An alert and unusable logs are answers, not faults: the Job fails without retrying them.
    [rule] = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["containerName"] == container["name"]
    assert sorted(rule["onExitCodes"]["values"]) == sorted(
        [MonitoringInputError.exit_code, MonitoringAlertError.exit_code]
    )
    # The summary and report go to the writable /tmp, never the read-only root.
    args = _args(container)
    assert args["--summary"].startswith("/tmp/")
    assert args["--report"].startswith("/tmp/")
    # The logs it names are on a volume mounted at the same path in the workers, which read them.
    [config] = [o for o in objects() if o["kind"] == "ConfigMap"]
    refs = {
        e["name"]: e["valueFrom"]["configMapKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert {r["name"] for r in refs.values()} == {config["metadata"]["name"]}
    assert container["args"][1] == "$(MLGITOPS_MONITOR_PREDICTIONS)"
    assert args["--labels"] == "$(MLGITOPS_MONITOR_FEEDBACK)"
    paths = {config["data"][r["key"]] for r in refs.values()}
    [worker] = _pods()["worker"]["containers"]
    for spec, mounts in (
        (pod, container["volumeMounts"]),
        (_pods()["worker"], worker["volumeMounts"]),
    ):
        [mount] = [m for m in mounts if m["name"] == "logs"]
        assert mount["readOnly"] is True
        assert all(p.startswith(mount["mountPath"] + "/") for p in paths), (paths, mount)
        [volume] = [v for v in spec["volumes"] if v["name"] == "logs"]
        assert volume["persistentVolumeClaim"] == {"claimName": "mlgitops-logs", "readOnly": True}
