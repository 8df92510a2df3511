"""A release repository with two releases on main (a `make_project` repo, releases written as
the package stage writes them), Alertmanager payloads, and `mlgitops revert serve` as a process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlgitops.release import ReleaseRecord, write_release
from tests.mlgitops.deploy.helpers import release_for
from tests.support.ports import free_port
from tests.support.project import GitRepo, make_project

A, B = release_for("A"), release_for("B")


@dataclass
class ReleaseRepo(GitRepo):
    def commit_release(self, record: ReleaseRecord, message: str, patch: bool = True) -> str:
        """Write release.json (and the k8s pin, unless `patch` is off) and commit them."""
        patch_path = self.path / "k8s/base/release.yaml"
        before = patch_path.read_bytes()
        write_release(record, self.path / "release.json", patch_path)
        if not patch:
            patch_path.write_bytes(before)
        self.git("add", "release.json", "k8s/base/release.yaml")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def commit_file(self, name: str, text: str, message: str) -> str:
        (self.path / name).parent.mkdir(parents=True, exist_ok=True)
        (self.path / name).write_text(text)
        self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def remove_file(self, name: str, message: str) -> str:
        self.git("rm", "-q", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tree(self, rev: str) -> str:
        return self.git("rev-parse", f"{rev}^{{tree}}")

    def blob(self, rev: str, path: str) -> str:
        return self.git("cat-file", "blob", f"{rev}:{path}")

    def state(self) -> dict[str, str]:
        """What a revert must never change: main, the branches, HEAD, the tree, the worktrees."""
        return {
            "main": self.git("rev-parse", "main"),
            "branches": self.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/"),
            "head": self.git("symbolic-ref", "HEAD"),
            "status": self.git("status", "--porcelain", "--untracked-files=all"),
            "worktrees": self.git("worktree", "list", "--porcelain"),
            "index": self.git("ls-files", "--stage"),
        }


def build_template(root: Path) -> Path:
    """A project repo whose main has release A then release B (B is the current one)."""
    make_project(root, rows=600)
    repo = ReleaseRepo(root)
    repo.git("config", "commit.gpgsign", "false")
    repo.commit_release(A, "release A")
    repo.commit_release(B, "release B")
    return root


def copy_repo(template: Path, dest: Path) -> ReleaseRepo:
    shutil.copytree(template, dest, symlinks=True)
    return ReleaseRepo(dest)


def payload(
    status: str = "firing",
    fingerprint: str = "5f1c2a9e0b7d4c31",
    bento_tag: str | None = B.bento_tag,
    **labels: str,
) -> dict:
    """An Alertmanager webhook payload (version 4) with one alert of our rules, about release
    `bento_tag` (default B, the current one on the template's main; None: no such label)."""
    alert_labels = {"alertname": "RealizedFprHighFast", "severity": "critical", "team": "ml"}
    if bento_tag is not None:
        alert_labels["bento_tag"] = bento_tag
    alert_labels.update(labels)
    alert = {
        "status": status,
        "labels": alert_labels,
        "annotations": {"summary": "Realized FPR above the release over 1d"},
        "startsAt": "2026-11-30T10:15:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.invalid/graph",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": '{}/{team="ml"}:{alertname="RealizedFprHighFast"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "mlgitops-revert",
        "groupLabels": {"alertname": alert_labels["alertname"]},
        "commonLabels": alert_labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.example.invalid",
        "alerts": [alert],
    }


@dataclass
class Receiver:
    url: str
    token: str
    log: str = ""  # what the server printed, once stopped

    def post(self, body: Any, token: str | None = None, raw: bytes | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = raw if raw is not None else json.dumps(body).encode()
        return httpx.post(f"{self.url}/alerts", content=content, headers=headers, timeout=60)


@contextmanager
def serving(
    repo: Path,
    token_dir: Path,
    token: str = "s3cret-token",
    base: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Receiver]:
    """`mlgitops revert serve` on 127.0.0.1 and a free port, stopped on exit."""
    token_file = token_dir / "token"
    token_file.write_text(token + "\n")
    port = free_port()
    cmd = [sys.executable, "-m", "mlgitops", "revert", "serve", "--port", str(port)]
    cmd += ["--token-file", str(token_file), "--repo", str(repo)]
    if base is not None:
        cmd += ["--base", base]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.communicate(timeout=5)[0] if proc.poll() is not None else ""
                raise AssertionError(f"revert serve did not start (exit {proc.poll()}):\n{output}")
            time.sleep(0.1)
        receiver = Receiver(url, token)
        yield receiver
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
    receiver.log = output
