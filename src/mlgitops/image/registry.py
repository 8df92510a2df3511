"""A throwaway CNCF distribution registry (Debian's `docker-registry`) and the bits of the
registry HTTP API (v2) that verify a push.

The registry listens on 127.0.0.1 only, keeps its blobs in a directory the caller owns, and is
stopped when the block exits. It is for tests and for dry runs of a release.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops.errors import ImageBuildError
from mlgitops.image.proc import tail
from mlgitops.image.run import free_port, stop_process, wait_http

# Ask for every manifest kind buildah may push; without the OCI type a v2 registry would
# convert or refuse, and the digest would not be the one pushed.
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


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
        raise ImageBuildError("docker-registry is not installed (apt-get install docker-registry)")
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
            raise ImageBuildError(
                f"local registry did not start: {error}\n{tail(output)}"
            ) from None
        yield registry
    finally:
        stop_process(process, grace=5)


def _request(url: str, method: str, insecure: bool) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers={"Accept": MANIFEST_ACCEPT})
    # Only for --tls-verify=false, the same opt-in buildah was given.
    context = ssl._create_unverified_context() if insecure else None
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return dict(response.headers.items()), response.read()


def _manifest_request(
    method: str, host: str, repository: str, reference: str, tls_verify: bool
) -> tuple[str, bytes]:
    # With tls_verify off, HTTPS without certificate checks is tried and then plain HTTP, the
    # order containers/image itself uses for an insecure registry.
    schemes = ["https"] if tls_verify else ["https", "http"]
    errors: list[str] = []
    for scheme in schemes:
        url = f"{scheme}://{host}/v2/{repository}/manifests/{reference}"
        try:
            headers, body = _request(url, method, insecure=not tls_verify)
        except urllib.error.HTTPError as error:
            raise ImageBuildError(f"{method} {url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            errors.append(f"{url}: {error}")
            continue
        digest = {k.lower(): v for k, v in headers.items()}.get("docker-content-digest")
        if not digest:
            raise ImageBuildError(f"{method} {url}: the registry sent no Docker-Content-Digest")
        return digest, body
    raise ImageBuildError("registry unreachable: " + "; ".join(errors))


def head_manifest_digest(
    host: str, repository: str, reference: str, *, tls_verify: bool = True
) -> str:
    """The registry's Docker-Content-Digest for a tag, from `HEAD /v2/<repo>/manifests/<ref>`."""
    return _manifest_request("HEAD", host, repository, reference, tls_verify)[0]


def fetch_manifest(
    host: str, repository: str, reference: str, *, tls_verify: bool = True
) -> tuple[str, dict[str, Any]]:
    """(Docker-Content-Digest, manifest JSON) of `host/repository:reference`."""
    digest, body = _manifest_request("GET", host, repository, reference, tls_verify)
    return digest, json.loads(body)
