"""Fixtures: a temporary BentoML home, and a small dev model saved and built into a bento."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlgitops.release import ReleaseRecord
from mlgitops.serving.layout import SCORE_REFERENCE_FILE
from tests.support.devmodel import DevArtifacts, make_dev_artifacts
from tests.support.ports import free_port
from tests.support.processes import descendants
from tests.support.project import REPO_ROOT

BENTO_NAME = "fraud-detector"
VERSION = "0123456789ab"


@dataclass(frozen=True)
class Packaged:
    home: Path
    artifacts: DevArtifacts
    model_tag: str
    bento_tag: str
    release: ReleaseRecord


def dev_release(
    artifacts: DevArtifacts, name: str = BENTO_NAME, version: str = VERSION
) -> ReleaseRecord:
    """The release record the package stage would write for the dev model."""
    meta: dict[str, Any] = artifacts.metadata
    return ReleaseRecord(
        bento_name=name,
        bento_version=version,
        model_tag=f"{name}:{version}",
        model_hash=meta["model_hash"],
        data_hash=meta["data_hash"],
        params_hash=meta["params_hash"],
        image=f"registry.example.com/{name}:{version}",
        threshold=meta["threshold"],
        threshold_policy=meta["threshold_policy"],
        metrics=meta["metrics"],
        data_until=meta["data_until"],
        mlgitops_version="0.1.0",
    )


@pytest.fixture(scope="package")
def dev_artifacts(tmp_path_factory: pytest.TempPathFactory) -> DevArtifacts:
    return make_dev_artifacts(tmp_path_factory.mktemp("dev-artifacts"))


@pytest.fixture(scope="package")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private BENTOML_HOME for these tests, restored afterwards for the rest of the session."""
    home = tmp_path_factory.mktemp("bentoml-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("BENTOML_HOME", str(home))
    mp.setenv("BENTOML_DO_NOT_TRACK", "true")
    restore = _point_stores_at(home)
    yield home
    restore()
    mp.undo()


_STORE_PROVIDERS = (
    "bentoml_home",
    "bento_store_dir",
    "model_store_dir",
    "env_store_dir",
    "tmp_bento_store_dir",
    "bento_store",
    "model_store",
)


def _point_stores_at(home: Path) -> Any:
    """BentoML resolves its home once per process; override the resolved stores too, in case
    another test imported and used bentoml before this fixture ran. Returns the undo."""
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    providers = {name: getattr(BentoMLContainer, name) for name in _STORE_PROVIDERS}
    previous = {name: provider._override for name, provider in providers.items()}
    dirs = {name: home / name for name in ("bentos", "models", "envs", "tmp")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    values = {
        "bentoml_home": str(home),
        "bento_store_dir": str(dirs["bentos"]),
        "model_store_dir": str(dirs["models"]),
        "env_store_dir": str(dirs["envs"]),
        "tmp_bento_store_dir": str(dirs["tmp"]),
        "bento_store": BentoStore(str(dirs["bentos"])),
        "model_store": ModelStore(str(dirs["models"])),
    }
    for name, value in values.items():
        providers[name].set(value)

    def restore() -> None:
        for name, provider in providers.items():
            provider._override = previous[name]

    return restore


def save_dev_model(artifacts: DevArtifacts, release: ReleaseRecord) -> str:
    """The dev model in the BentoML store as the package stage saves one: the release as its
    metadata, the score reference beside it. Returns the model tag."""
    from mlgitops.packaging.bento import save_model

    return save_model(
        name=release.bento_name,
        version=release.bento_version,
        model_file=artifacts.model_file,
        profile_file=artifacts.profile_file,
        schema_file=artifacts.schema_file,
        model_card_file=artifacts.model_card_file,
        metadata=release.model_dump(mode="json"),
        extra_files={SCORE_REFERENCE_FILE: artifacts.score_reference_file},
    )


@pytest.fixture(scope="package")
def packaged(bentoml_home: Path, dev_artifacts: DevArtifacts) -> Packaged:
    from mlgitops.packaging.bento import build_bento, pinned_requirements

    # As the package stage does: the release as the model's metadata and in the bento's pin.
    release = dev_release(dev_artifacts)
    model_tag = save_dev_model(dev_artifacts, release)
    bento_tag = build_bento(
        bento_name=BENTO_NAME,
        version=VERSION,
        model_tag=model_tag,
        release=release.model_dump(mode="json"),
        requirements=pinned_requirements(REPO_ROOT / "requirements.lock"),
    )
    return Packaged(bentoml_home, dev_artifacts, model_tag, bento_tag, release)


# --- Real servers: `bentoml serve <bento>` on 127.0.0.1, in their own session (process group).

MAX_BATCH = 50


@dataclass
class LiveServer:
    url: str
    process: Any
    prediction_log: Path
    feedback_log: Path
    log_file: Path
    # The bearer tokens the server takes (None: not set for it).
    feedback_token: str | None = None
    predict_token: str | None = None

    def feedback_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.feedback_token}"}

    def read_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.predict_token}"} if self.predict_token else {}

    def group_pids(self) -> list[int]:
        """The server and its descendants (BentoML's workers run in sessions of their own)."""
        return [self.process.pid, *descendants(self.process.pid)]

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.group_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total


def stop_server(process: Any) -> None:
    """SIGTERM the server's group (BentoML stops its workers), then SIGKILL any worker left."""
    workers = descendants(process.pid)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    for pid in workers:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(url: str, status: int, timeout: float, process: Any) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2).status_code == status:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def secret_file(directory: Path, name: str) -> tuple[Path, str]:
    """A token or key file as a mounted Secret holds it: (its path, the value)."""
    value = secrets.token_hex(32)
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path, value


def _home_of_its_own(store: Path, workdir: Path) -> Path:
    """A BENTOML_HOME holding `store`'s bentos and models (linked), for one server: BentoML
    empties $BENTOML_HOME/prometheus_multiproc_dir when a server starts, which would wipe the
    counters of another server running from the same home."""
    home = workdir / "bentoml-home"
    home.mkdir(exist_ok=True)
    for entry in store.iterdir():
        link = home / entry.name
        if entry.name != "prometheus_multiproc_dir" and not link.exists():
            link.symlink_to(entry, target_is_directory=entry.is_dir())
    return home


@contextmanager
def run_server(
    packaged: Packaged,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    target: str | None = None,
    home: Path | None = None,
    feedback_token: bool = True,
    predict_token: bool = False,
    request_id_key: bool = True,
) -> Iterator[LiveServer]:
    """`bentoml serve` of `target` (default: the packaged bento's tag) with `home` as
    BENTOML_HOME (default: the packaged store, in a home of its own), with a feedback token, a
    shared request id key and, if asked, a predict token, each in a file of its own (as the pod
    mounts them)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGITOPS_")}
    workdir.mkdir(parents=True, exist_ok=True)
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        process=None,
        prediction_log=workdir / "predictions.jsonl",
        feedback_log=workdir / "feedback.jsonl",
        log_file=workdir / "server.log",
    )
    credentials: dict[str, str] = {}
    if feedback_token:
        path, server.feedback_token = secret_file(workdir, "feedback-token")
        credentials["MLGITOPS_FEEDBACK_TOKEN_FILE"] = str(path)
    if predict_token:
        path, server.predict_token = secret_file(workdir, "predict-token")
        credentials["MLGITOPS_PREDICT_TOKEN_FILE"] = str(path)
    if request_id_key:
        path, _ = secret_file(workdir, "request-id-key")
        credentials["MLGITOPS_REQUEST_ID_KEY_FILE"] = str(path)
    env.update(
        BENTOML_HOME=str(home or _home_of_its_own(packaged.home, workdir)),
        BENTOML_DO_NOT_TRACK="True",
        OMP_NUM_THREADS="1",
        MLGITOPS_PREDICTION_LOG=str(server.prediction_log),
        MLGITOPS_FEEDBACK_LOG=str(server.feedback_log),
        MLGITOPS_MAX_BATCH_SIZE=str(MAX_BATCH),
        **credentials,
    )
    env.update(extra_env or {})  # may name other log paths
    server.prediction_log = Path(env["MLGITOPS_PREDICTION_LOG"])
    server.feedback_log = Path(env["MLGITOPS_FEEDBACK_LOG"])
    cmd = [sys.executable, "-m", "bentoml", "serve", target or packaged.bento_tag]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with server.log_file.open("wb") as log:
        process = subprocess.Popen(
            cmd, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server.process = process
    try:
        if not wait_for(f"{server.url}/livez", 200, 90, process):
            raise RuntimeError(f"server did not start:\n{server.log_file.read_text()[-3000:]}")
        yield server
    finally:
        stop_server(process)


@pytest.fixture(scope="package")
def live_server(
    packaged: Packaged, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # The pod gets its commit from the deploy's annotation; this server from the same variable.
    commit = {"MLGITOPS_GIT_COMMIT": "deadbeef"}
    with run_server(packaged, tmp_path_factory.mktemp("live-server"), commit) as server:
        if not wait_for(f"{server.url}/readyz", 200, 90, server.process):
            raise RuntimeError(f"server not ready:\n{server.log_file.read_text()[-3000:]}")
        yield server
