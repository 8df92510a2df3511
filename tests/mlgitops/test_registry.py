"""The registry client: references, credentials as buildah finds them, the token challenge, and
a real CNCF distribution registry on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlgitops.errors import RegistryError
from mlgitops.registry import (
    ImageReference,
    RegistryClient,
    auth_files,
    find_credentials,
    head_manifest_digest,
)
from tests.support.registry import LocalRegistry, local_registry, push_test_image

pytestmark = pytest.mark.timeout(60)

DIGEST = "sha256:" + "d" * 64


# -------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag", "digest"),
    [
        ("python:3.12-alpine", "docker.io", "library/python", "3.12-alpine", None),
        ("bitnami/redis", "docker.io", "bitnami/redis", None, None),
        ("registry.example.com/mlgitops/fd:1d75c8363bf4", "registry.example.com", "mlgitops/fd",
         "1d75c8363bf4", None),
        ("127.0.0.1:5000/mlgitops/fd:v1", "127.0.0.1:5000", "mlgitops/fd", "v1", None),
        ("localhost/fd", "localhost", "fd", None, None),
        (f"ghcr.io/o/fd:v1@{DIGEST}", "ghcr.io", "o/fd", "v1", DIGEST),
        (f"ghcr.io/o/fd@{DIGEST}", "ghcr.io", "o/fd", None, DIGEST),
    ],
)  # fmt: skip
def test_references_split_as_container_tools_split_them(
    text: str, host: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageReference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)
    assert ref.reference == (digest or tag or "latest")


def test_a_pinned_reference_keeps_the_name_as_written() -> None:
    ref = ImageReference.parse("python:3.12-alpine")
    assert ref.pinned(DIGEST) == f"python:3.12-alpine@{DIGEST}"
    assert ImageReference.parse(f"python:3.12@{DIGEST}").tagged == "python:3.12"


@pytest.mark.parametrize(
    "text", ["r.io/Upper/fd:1", "r.io/fd@sha256:short", "r.io/fd:bad tag", "r.io/fd:-x"]
)
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="image"):
        ImageReference.parse(text)


# ------------------------------------------------------------------------- credentials


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_credentials_are_found_where_buildah_and_docker_write_them(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    runtime = tmp_path / "run/containers/auth.json"
    docker = tmp_path / "home/.docker/config.json"
    assert auth_files(None, env)[0] == runtime
    assert find_credentials("ghcr.io", "o/fd", environ=env) is None
    docker.parent.mkdir(parents=True)
    docker.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": _auth("hub", "h"),
        "ghcr.io": _auth("docker-user", "d"),
    }}))  # fmt: skip
    assert find_credentials("docker.io", "library/python", environ=env) == ("hub", "h")
    assert find_credentials("ghcr.io", "o/fd", environ=env) == ("docker-user", "d")
    # The runtime file (what `buildah login` writes) comes first; a namespace key beats the host.
    runtime.parent.mkdir(parents=True)
    runtime.write_text(json.dumps({"auths": {
        "ghcr.io": _auth("host-user", "x"), "ghcr.io/o": _auth("ns-user", "y"),
    }}))  # fmt: skip
    assert find_credentials("ghcr.io", "o/fd", environ=env) == ("ns-user", "y")
    assert find_credentials("ghcr.io", "other/fd", environ=env) == ("host-user", "x")
    # An explicit file (--authfile, $REGISTRY_AUTH_FILE) replaces the runtime one.
    explicit = tmp_path / "ci-auth.json"
    explicit.write_text(json.dumps({"auths": {"ghcr.io": _auth("ci", "z")}}))
    assert find_credentials("ghcr.io", "o/fd", explicit, env) == ("ci", "z")
    assert find_credentials("ghcr.io", "o/fd", environ={**env, "REGISTRY_AUTH_FILE": str(explicit)})


def test_a_broken_credentials_file_is_a_clear_error(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    broken = tmp_path / "auth.json"
    broken.write_text("{not json")
    with pytest.raises(RegistryError, match=r"auth.json is not a JSON object with `auths`"):
        find_credentials("ghcr.io", "o/fd", broken, env)
    broken.write_text(json.dumps({"auths": {"ghcr.io": {"auth": "bm9jb2xvbg=="}}}))  # "nocolon"
    with pytest.raises(RegistryError, match="is not base64 of user:password") as error:
        find_credentials("ghcr.io", "o/fd", broken, env)
    assert error.value.kind == "config"
    with pytest.raises(RegistryError, match="does not exist"):
        find_credentials("ghcr.io", "o/fd", tmp_path / "missing.json", env)


# ------------------------------------------------------------- the token challenge


class _TokenRegistry(BaseHTTPRequestHandler):
    """Answers like Docker Hub or GHCR: 401 with a Bearer challenge, a token for user:pass."""

    manifest = b'{"schemaVersion": 2}'
    scheme = "bearer"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        host = self.headers["Host"]
        login = "Basic " + base64.b64encode(b"robot:s3cret").decode()
        if self.path.startswith("/token"):
            if self.headers.get("Authorization") != login:
                self._reply(401, {})
                return
            assert "scope=repository%3Ao%2Ffd%3Apull" in self.path
            self._reply(200, {}, json.dumps({"token": "t0ken"}).encode())
            return
        wanted = "Bearer t0ken" if self.scheme == "bearer" else login
        if self.headers.get("Authorization") != wanted:
            challenge = (
                f'Bearer realm="http://{host}/token",service="stub",scope="repository:o/fd:pull"'
                if self.scheme == "bearer"
                else 'Basic realm="stub"'
            )
            self._reply(401, {"WWW-Authenticate": challenge})
            return
        digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        self._reply(200, {"Docker-Content-Digest": digest}, self.manifest)

    def do_HEAD(self) -> None:
        self.do_GET()


@pytest.fixture(params=["bearer", "basic"])
def token_registry(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_TokenRegistry,), {"scheme": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_registry_challenge_is_answered_with_the_stored_credentials(
    token_registry: str, tmp_path: Path
) -> None:
    image = ImageReference.parse(f"{token_registry}/o/fd:v1")
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    anonymous = RegistryClient(tls_verify=False, environ=env)
    with pytest.raises(RegistryError, match="401") as refused:
        anonymous.digest(image)
    assert refused.value.kind == "denied"

    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {token_registry: _auth("robot", "s3cret")}}))
    client = RegistryClient(tls_verify=False, authfile=authfile, environ=env)
    expected = "sha256:" + hashlib.sha256(_TokenRegistry.manifest).hexdigest()
    assert client.digest(image) == expected
    assert client.manifest(image) == (expected, {"schemaVersion": 2})


def test_tls_verification_does_not_fall_back_to_plain_http(token_registry: str) -> None:
    image = ImageReference.parse(f"{token_registry}/o/fd:v1")
    with pytest.raises(RegistryError) as error:
        RegistryClient(tls_verify=True).digest(image)
    assert error.value.kind == "unreachable"
    assert "http://" not in str(error.value)


# ------------------------------------------------------------------ a real registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (apt-get install -y docker-registry)")
    with local_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


def test_digest_manifest_and_config_from_a_real_registry(registry: LocalRegistry) -> None:
    pushed = push_test_image(registry, "mlgitops/fd", "v1", "model A")
    client = RegistryClient(tls_verify=False)
    image = ImageReference.parse(pushed.reference)
    assert client.digest(image) == pushed.digest
    digest, manifest = client.manifest(image)
    assert digest == pushed.digest
    assert manifest["config"]["digest"] == pushed.config
    assert client.config_digests(image) == {pushed.config}
    by_digest = ImageReference.parse(f"{registry.host}/mlgitops/fd@{pushed.digest}")
    assert client.digest(by_digest) == pushed.digest
    assert head_manifest_digest(registry.host, "mlgitops/fd", "v1", tls_verify=False) == (
        pushed.digest
    )

    again = push_test_image(registry, "mlgitops/fd", "v1", "model A, rebuilt")
    assert client.digest(image) == again.digest != pushed.digest  # the tag moved
    assert client.digest(by_digest) == pushed.digest  # the old bytes are still there

    with pytest.raises(RegistryError, match="HTTP 404") as missing:
        client.digest(ImageReference.parse(f"{registry.host}/mlgitops/fd:nope"))
    assert missing.value.kind == "unknown"


def test_an_index_yields_the_configs_of_every_platform(registry: LocalRegistry) -> None:
    import urllib.request

    amd = push_test_image(registry, "mlgitops/multi", "amd64", "amd64 bytes")
    arm = push_test_image(registry, "mlgitops/multi", "arm64", "arm64 bytes")
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": p.digest,
             "size": 1, "platform": {"os": "linux", "architecture": arch}}
            for p, arch in ((amd, "amd64"), (arm, "arm64"))
        ],
    }).encode()  # fmt: skip
    put = urllib.request.Request(
        f"{registry.url}/v2/mlgitops/multi/manifests/v1",
        method="PUT",
        data=index,
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    urllib.request.urlopen(put, timeout=30).close()
    client = RegistryClient(tls_verify=False)
    image = ImageReference.parse(f"{registry.host}/mlgitops/multi:v1")
    # The index's own digest is what a kubelet reports for a multi-platform tag.
    assert client.digest(image) == "sha256:" + hashlib.sha256(index).hexdigest()
    assert client.config_digests(image) == {amd.config, arm.config}
