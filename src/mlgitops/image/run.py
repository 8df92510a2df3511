"""Start a built image with `buildah run` and wait until its HTTP server answers.

There is no port mapping: under chroot isolation (the only one that works without runc/crun
namespaces here) `buildah run` stays in the host's network namespace, so a server listening on
127.0.0.1:PORT inside is 127.0.0.1:PORT on the host. The port is chosen by the caller, and the
command is the image's own ENTRYPOINT with `serve --port PORT` (what `docker run IMAGE serve
--port PORT` would run), as the image's USER, in its WORKDIR, with its ENV.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlgitops.errors import ImageBuildError
from mlgitops.image.buildah import ISOLATION, Buildah, image_config
from mlgitops.image.proc import tail


@dataclass(frozen=True)
class RunningContainer:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 2xx; fail early if `process` dies first."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ImageBuildError(f"the container exited with {process.returncode} before {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.5)
    raise ImageBuildError(f"{url} did not answer within {timeout:.0f}s (last: {last})")


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM `process`'s process group, then SIGKILL it if it outlives `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def _proc_link(pid: int, name: str) -> str | None:
    try:
        return str(Path(f"/proc/{pid}/ns/{name}").readlink())
    except OSError:
        return None


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: parse after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def container_namespaces(pid: int) -> set[str]:
    """The mount namespaces `buildah run` (pid) made for its container.

    BentoML's workers call setsid(), so they leave the process group of `buildah run`; what they
    cannot leave is the container's mount namespaces (buildah nests two: one for its chroot
    runtime, one for the container), which no process outside the container shares.
    """
    own = _proc_link(os.getpid(), "mnt")
    children: dict[int, list[int]] = {}
    for candidate in _all_pids():
        parent = _parent(candidate)
        if parent is not None:
            children.setdefault(parent, []).append(candidate)
    found: set[str] = set()
    stack = list(children.get(pid, []))
    while stack:
        current = stack.pop()
        namespace = _proc_link(current, "mnt")
        if namespace is not None and namespace != own:
            found.add(namespace)
        stack.extend(children.get(current, []))
    return found


def _pids_in(namespaces: set[str]) -> list[int]:
    return [pid for pid in _all_pids() if _proc_link(pid, "mnt") in namespaces]


def stop_container(
    process: subprocess.Popen[bytes], namespaces: set[str], grace: float = 15.0
) -> None:
    """SIGTERM every process of the container (a graceful BentoML shutdown), then `buildah run`;
    SIGKILL whatever is left after `grace` seconds."""
    if namespaces:
        for pid in _pids_in(namespaces):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _pids_in(namespaces) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in _pids_in(namespaces):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stop_process(process, grace)


@contextlib.contextmanager
def running_container(
    image: str,
    buildah: Buildah,
    *,
    port: int | None = None,
    args: Sequence[str] | None = None,
    ready_path: str | None = "/readyz",
    startup_timeout: float = 120.0,
    log_dir: Path | None = None,
) -> Iterator[RunningContainer]:
    """Run `image` (ENTRYPOINT + `args`, default `serve --port PORT`) until the block exits.

    With `ready_path`, the block starts only once GET http://127.0.0.1:PORT<ready_path> is 2xx.
    """
    info = buildah.inspect_image(image)
    if info is None:
        raise ImageBuildError(f"image {image} is not in buildah storage {buildah.root}")
    port = port or free_port()
    entrypoint = list(image_config(info).get("Entrypoint") or [])
    command = [*entrypoint, *(args if args is not None else ["serve", "--port", str(port)])]
    if not command:
        raise ImageBuildError(f"image {image} has no ENTRYPOINT and no command was given")
    name = f"mlgitops-run-{uuid.uuid4().hex[:12]}"
    buildah("from", "--pull-never", "--name", name, image, what=f"create container of {image}")
    log = (log_dir or buildah.root.parent / "logs") / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process: subprocess.Popen[bytes] | None = None
    # Seen while the process tree is whole; a server that crashed may orphan its workers.
    namespaces: set[str] = set()
    try:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                buildah.argv("run", "--isolation", ISOLATION, name, "--", *command),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # not in our group: Ctrl-C handling stays ours
            )
        running = RunningContainer(name, port, log, process)
        if ready_path is not None:
            try:
                wait_http(running.base_url + ready_path, startup_timeout, process)
            except ImageBuildError as error:
                stop_container(process, container_namespaces(process.pid))
                output = log.read_text(encoding="utf-8", errors="replace")
                raise ImageBuildError(f"{error}; container log {log}:\n{tail(output)}") from None
            namespaces = container_namespaces(process.pid)
        yield running
    finally:
        if process is not None:
            stop_container(process, namespaces | container_namespaces(process.pid))
        with contextlib.suppress(ImageBuildError):
            buildah("rm", name, what=f"remove container {name}")
