"""A throwaway CNCF distribution registry (Debian's `docker-registry`) for the push tests.

It listens on 127.0.0.1 only, keeps its blobs in a directory the test owns, and is stopped when the
block exits.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlgitops.errors import ImageBuildError
from mlgitops.image.proc import tail
from mlgitops.image.run import free_port, stop_process, wait_http


@dataclass(frozen=True)
class LocalRegistry:
    host: str  # "127.0.0.1:PORT", what image references start with
    storage: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def registry_config(storage: Path, port: int) -> str:
    # JSON is YAML; it avoids a YAML writer for five keys.
    return json.dumps(
        {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}"},
        },
        indent=2,
    )


@contextlib.contextmanager
def local_registry(workdir: Path, port: int | None = None) -> Iterator[LocalRegistry]:
    """Run `docker-registry serve` on 127.0.0.1 with storage under `workdir`."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(registry_config(workdir / "data", port), encoding="utf-8")
    log = workdir / "registry.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    registry = LocalRegistry(f"127.0.0.1:{port}", workdir / "data", log)
    try:
        try:
            wait_http(registry.url + "/v2/", 30, process)
        except ImageBuildError as error:
            output = log.read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"local registry did not start: {error}\n{tail(output)}") from None
        yield registry
    finally:
        stop_process(process, grace=5)
