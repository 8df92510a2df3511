"""docs/scale-kubernetes.md stays true: its overlay renders and validates, the names it gives are
the manifests', and its commands run as written against a LocalCluster."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s.test_dask import CRD_VERSION, crd_errors, validate_strictly
from tests.k8s.test_manifests import K8S, PROJECT, kustomize

pytestmark = pytest.mark.timeout(120)

DOC = (PROJECT / "docs" / "scale-kubernetes.md").read_text()
SRC = PROJECT / "src" / "mlgitops"


def blocks(lang: str = "") -> list[str]:
    """The doc's fenced blocks opened with ```<lang>, in order."""
    found: list[str] = []
    current: list[str] | None = None
    opened = ""
    for line in DOC.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current, opened = [], line[3:].strip()
            else:
                if opened == lang:
                    found.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return found


def test_the_documented_overlay_renders_and_validates(tmp_path: Path) -> None:
    [overlay] = [b for b in blocks("yaml") if "k8s/dask-production/kustomization.yaml" in b]
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S / "dask", k8s / "dask")
    (k8s / "dask-production").mkdir()
    (k8s / "dask-production" / "kustomization.yaml").write_text(overlay)
    assert "kubectl apply --server-side -k k8s/dask-production" in DOC
    objects = kustomize(k8s / "dask-production")
    [cluster] = [o for o in objects if o["kind"] == "DaskCluster"]
    assert crd_errors(cluster) == []
    assert cluster["spec"]["worker"]["replicas"] == 8
    [digest] = re.findall(r"digest: (sha256:[0-9a-f]{64})", overlay)
    pinned = f"registry.internal:5000/mlgitops/pipeline@{digest}"
    [cronjob] = [o for o in objects if o["kind"] == "CronJob"]
    pods = [
        cluster["spec"]["scheduler"]["spec"],
        cluster["spec"]["worker"]["spec"],
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ]
    assert {c["image"] for pod in pods for c in pod["containers"]} == {pinned}
    builtins = [o for o in objects if o["kind"] != "DaskCluster"]
    proc = validate_strictly(builtins, tmp_path / "builtin.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_doc_names_what_the_manifests_hold() -> None:
    objects = kustomize(K8S / "dask")
    [cluster] = [o for o in objects if o["kind"] == "DaskCluster"]
    [cronjob] = [o for o in objects if o["kind"] == "CronJob"]
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    address = env["MLGITOPS_DASK_SCHEDULER"]
    assert f"MLGITOPS_DASK_SCHEDULER={address}" in DOC
    assert f"svc/{cluster['metadata']['name']}-scheduler 8786:8786" in DOC
    assert f"-n {cluster['metadata']['namespace']} " in DOC
    assert f"--version {CRD_VERSION}" in DOC
    minute, hour, *_ = cronjob["spec"]["schedule"].split()
    assert hour == "*"
    assert f"every hour at :{minute} (UTC)" in DOC
    # The CronJob's command, as the doc shows it.
    shown = " ".join(
        next(b for b in blocks() if b.startswith("mlgitops monitor $(")).replace("\\\n", "").split()
    )
    assert shown == "mlgitops " + " ".join(container["args"])


def _here_block() -> str:
    [block] = [b for b in blocks() if "dvc repro --force" in b]
    return block


# Enabled once the stages and the monitor run on the engine (see _runs_on_the_engine).
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_documented_commands_run_against_a_local_cluster(tmp_path: Path) -> None:
    from distributed import LocalCluster

    from tests.support.project import released_project, run

    project = released_project(tmp_path / "repo")
    root = project.root
    out = tmp_path / "t"
    env = {
        **os.environ,
        "BENTOML_HOME": str(project.bentoml_home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for name in ("MLGITOPS_ENGINE", "MLGITOPS_DASK_SCHEDULER"):
        env.pop(name, None)
    lines = [line for line in _here_block().splitlines() if line.strip()]
    traffic, engine, address, repro, monitor = lines
    assert engine == "export MLGITOPS_ENGINE=scheduler"
    assert address.startswith("export MLGITOPS_DASK_SCHEDULER=")

    def argv(line: str) -> list[str]:
        return shlex.split(line.replace("/tmp/t", str(out)))

    def monitor_summary(environment: dict[str, str]) -> bytes:
        proc = subprocess.run(argv(monitor), cwd=root, env=environment, capture_output=True,
                              text=True, check=False, timeout=900)  # fmt: skip
        # 0 nothing fired, 15 an alert fired: both are verdicts on the same numbers.
        assert proc.returncode in (0, 15), proc.stdout + proc.stderr
        summary = out / "summary.json"
        data = summary.read_bytes()
        summary.unlink()
        return data

    subprocess.run(argv(traffic), cwd=root, env=env, check=True, timeout=600)
    in_process = monitor_summary(env)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:  # fmt: skip
        scheduler_env = {
            **env,
            "MLGITOPS_ENGINE": engine.split("=", 1)[1],
            "MLGITOPS_DASK_SCHEDULER": cluster.scheduler_address,
        }
        before = cluster.scheduler.transition_counter
        proc = subprocess.run(argv(repro), cwd=root, env=scheduler_env, capture_output=True,
                              text=True, check=False, timeout=1500)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        after_repro = cluster.scheduler.transition_counter
        assert after_repro > before, "dvc repro did not run on the scheduler"
        on_cluster = monitor_summary(scheduler_env)
        assert cluster.scheduler.transition_counter > after_repro, "the monitor did not either"

    # Every stage recomputed on the cluster gives release 1's bytes, but for the gate's verdict:
    # forced at the release's own commit, it now has that release as its baseline.
    committed = yaml.safe_load(run(["git", "show", "HEAD:dvc.lock"], root).stdout)
    recomputed = yaml.safe_load((root / "dvc.lock").read_text())
    differ = {
        path
        for path in {*lock_hashes(committed), *lock_hashes(recomputed)}
        if lock_hashes(committed).get(path) != lock_hashes(recomputed).get(path)
    }
    assert differ <= GATE_OUTPUTS, differ - GATE_OUTPUTS
    status = run(["git", "status", "--porcelain"], root).stdout.splitlines()
    changed = {line[3:] for line in status if line.strip()}
    assert changed <= {"dvc.lock", *GATE_OUTPUTS}, changed
    assert "release.json" not in changed
    assert json.loads(on_cluster) == json.loads(in_process)
    assert on_cluster == in_process


GATE_OUTPUTS = {"metrics/gate.json", "reports/gate.json", "reports/gate.md"}


def lock_hashes(lock: dict) -> dict[str, str]:
    """path -> md5 of every dep and out of every stage in a parsed dvc.lock."""
    found: dict[str, str] = {}
    for stage in lock["stages"].values():
        for entry in [*(stage.get("deps") or []), *(stage.get("outs") or [])]:
            found[entry["path"]] = entry.get("md5", "")
    return found
