"""A throwaway CNCF distribution registry (Debian's `docker-registry`) for the push and deploy
tests.

It listens on 127.0.0.1 only, keeps its blobs in a directory the test owns, and is stopped when the
block exits. `push_test_image` puts a small image into it through the HTTP API, for tests that
need real manifests and digests but no image build.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import urllib.parse
import urllib.request
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


@dataclass(frozen=True)
class PushedImage:
    reference: str  # HOST/REPO:TAG
    digest: str  # manifest digest
    config: str  # config digest (what runtimes call the image ID)


def _blob(registry: LocalRegistry, repository: str, data: bytes) -> str:
    """Upload one blob (monolithic: POST then PUT with the digest); its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(
        f"{registry.url}/v2/{repository}/blobs/uploads/", method="POST", data=b""
    )
    with urllib.request.urlopen(start, timeout=30) as answer:
        location = answer.headers["Location"]
    url = urllib.parse.urljoin(registry.url, location)
    url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
    put = urllib.request.Request(
        url, method="PUT", data=data, headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(put, timeout=30):
        pass
    return digest


def push_test_image(
    registry: LocalRegistry, repository: str, tag: str, content: str
) -> PushedImage:
    """Push a small, valid OCI image (one layer holding `content`) as `repository:tag`, through
    the distribution API: no container tools needed. Other `content`, other digest; pushing
    again under the same tag re-points the tag, as a re-push does."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        payload = content.encode("utf-8")
        info = tarfile.TarInfo("content.txt")
        info.size, info.mtime = len(payload), 0
        tar.addfile(info, io.BytesIO(payload))
    uncompressed = layer_tar.getvalue()
    layer = gzip.compress(uncompressed, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"mlgitops.test/content": content}},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(uncompressed).hexdigest()],
            },
        },
        sort_keys=True,
    ).encode("utf-8")
    config_digest = _blob(registry, repository, config)
    layer_digest = _blob(registry, repository, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode("utf-8")
    put = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        method="PUT",
        data=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(put, timeout=30) as answer:
        digest = answer.headers["Docker-Content-Digest"]
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    return PushedImage(f"{registry.host}/{repository}:{tag}", digest, config_digest)
