"""The container registry's HTTP API (OCI distribution v2), as far as mlgitops asks it: which
manifest digest a tag names now, and a manifest itself.

`image push` proves a push with it and `deploy` pins the release's tag to a digest with it. Both
use what buildah, podman and skopeo use: the credentials of containers-auth.json(5) (the files
`buildah login` and `docker login` write) and one TLS switch. With TLS verification off, HTTPS
without certificate checks is tried first and then plain HTTP, the order containers/image uses
for an insecure registry. Registries that want a token (Docker Hub, GHCR, Harbor, ...) answer
401 with a `WWW-Authenticate: Bearer` challenge, and the token is fetched from its realm.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops.errors import RegistryError

# Ask for every manifest kind a build may push; without the OCI types a v2 registry would
# convert or refuse, and the digest would not be the one pushed. An index (multi-platform) is
# asked for as such: its digest is what a kubelet reports when it pulls the tag.
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
REQUEST_TIMEOUT_S = 30.0
DOCKER_HUB = "docker.io"
# Where the Docker Hub's API answers, and the names its credentials are stored under.
_DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io")

DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^\w[\w.-]{0,127}$")


# -------------------------------------------------------------------- image references


@dataclass(frozen=True)
class ImageReference:
    """`[HOST[:PORT]/]REPO[:TAG][@DIGEST]`, split as container tools split it."""

    name: str  # as written, without tag and digest
    host: str  # the registry ("docker.io" for a name without one)
    repository: str  # the path in the registry ("library/python" for "python")
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str) -> ImageReference:
        text = reference.strip()
        rest, at, digest = text.partition("@")
        if at and not DIGEST.match(digest):
            raise ValueError(f"image {reference!r}: {digest!r} is not a digest")
        name, tag = rest, None
        colon = rest.rfind(":")
        if colon > rest.rfind("/"):
            name, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG.match(tag):
                raise ValueError(f"image {reference!r}: {tag!r} is not a tag")
        first, slash, remainder = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            host, repository = first, remainder
        else:
            host, repository = DOCKER_HUB, name
            if "/" not in repository:
                repository = f"library/{repository}"
        if not REPOSITORY.match(repository):
            raise ValueError(f"image {reference!r}: {repository!r} is not a repository name")
        return cls(name, host, repository, tag, digest or None)

    @property
    def tagged(self) -> str:
        """The reference without its digest: what a tag-based deploy applies."""
        return f"{self.name}:{self.tag}" if self.tag else self.name

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def pinned(self, digest: str) -> str:
        """`NAME:TAG@DIGEST`."""
        return pinned_reference(self.tagged, digest)


def pinned_reference(image: str, digest: str) -> str:
    """`image` (`name:tag`) pinned to `digest`; unchanged without a digest or if pinned already.
    The tag stays for people, the runtime pulls by the digest."""
    if not digest or "@" in image:
        return image
    return f"{image}@{digest}"


# ------------------------------------------------------------------------- credentials


def auth_files(authfile: str | Path | None, environ: Mapping[str, str]) -> list[Path]:
    """The files containers-auth.json(5) reads, in its order; an explicit one replaces the first."""
    home = Path(environ.get("HOME") or Path.home())
    if authfile or environ.get("REGISTRY_AUTH_FILE"):
        primary = Path(authfile or environ["REGISTRY_AUTH_FILE"]).expanduser()
    elif environ.get("XDG_RUNTIME_DIR"):
        primary = Path(environ["XDG_RUNTIME_DIR"]) / "containers/auth.json"
    else:
        primary = Path(f"/run/containers/{os.getuid()}/auth.json")
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [primary, config_home / "containers/auth.json", home / ".docker/config.json"]


def _normalized_key(key: str) -> str:
    """`https://index.docker.io/v1/` -> `index.docker.io`: docker writes keys as URLs."""
    key = re.sub(r"^[a-z]+://", "", key.strip())
    key = key.rstrip("/")
    return key[: -len("/v1")] if key.endswith("/v1") else key


def _candidate_keys(host: str, repository: str) -> list[str]:
    """Most specific first: `host/ns/repo`, `host/ns`, `host` (auth.json keys may be namespaces)."""
    hosts = _DOCKER_HUB_KEYS if host == DOCKER_HUB else (host,)
    parts = repository.split("/")
    keys = []
    for h in hosts:
        keys += [f"{h}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
    return keys + list(hosts)


def find_credentials(
    host: str,
    repository: str,
    authfile: str | Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[str, str] | None:
    """(user, password) for `host/repository` from the first auth file that has any."""
    wanted = _candidate_keys(host, repository)
    for path in auth_files(authfile, environ):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if authfile and path == Path(authfile).expanduser():
                raise RegistryError(f"registry auth file {path} does not exist", "config") from None
            continue
        except OSError as error:
            raise RegistryError(f"registry auth file {path}: {error.strerror}", "config") from None
        try:
            auths = json.loads(text).get("auths") or {}
            entries = {_normalized_key(k): v for k, v in auths.items()}
        except (ValueError, AttributeError):
            raise RegistryError(
                f"registry auth file {path} is not a JSON object with `auths`", "config"
            ) from None
        for key in wanted:
            encoded = (entries.get(key) or {}).get("auth")
            if not encoded:
                continue
            try:
                user, sep, password = base64.b64decode(encoded).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                sep = ""
            if not sep:
                raise RegistryError(
                    f"registry auth file {path}: the `auth` of {key!r} is not base64 of "
                    "user:password",
                    "config",
                )
            return user, password
    return None


# ---------------------------------------------------------------------------- the client


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def _basic(credentials: tuple[str, str]) -> str:
    token = base64.b64encode(":".join(credentials).encode("utf-8")).decode("ascii")
    return f"Basic {token}"


class RegistryClient:
    """Asks registries for manifests, with the credentials and TLS switch buildah would use."""

    def __init__(
        self,
        *,
        tls_verify: bool = True,
        authfile: str | Path | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.tls_verify = tls_verify
        self.authfile = authfile
        self.timeout = timeout
        self.environ = os.environ if environ is None else environ
        self._tokens: dict[tuple[str, str], str] = {}  # (host, repository) -> Authorization

    # ------------------------------------------------------------------------- public

    def digest(self, image: ImageReference) -> str:
        """The manifest digest the registry serves for the image's tag (or digest) now."""
        headers, body = self._manifest("HEAD", image)
        digest = headers.get("docker-content-digest", "")
        if not digest:  # a registry may leave it out of HEAD; the body's hash is the digest
            headers, body = self._manifest("GET", image)
            digest = headers.get("docker-content-digest") or _sha256(body)
        if not DIGEST.match(digest):
            raise RegistryError(
                f"{self._where(image)}: the registry sent {digest!r} as the digest", "invalid"
            )
        return digest

    def manifest(self, image: ImageReference) -> tuple[str, dict[str, Any]]:
        """(digest, manifest JSON); the digest is checked against the bytes received."""
        headers, body = self._manifest("GET", image)
        actual = _sha256(body)
        claimed = headers.get("docker-content-digest") or actual
        if claimed.startswith("sha256:") and claimed != actual:
            raise RegistryError(
                f"{self._where(image)}: the registry says {claimed} but sent bytes of {actual}",
                "invalid",
            )
        try:
            manifest = json.loads(body)
        except ValueError:
            where = self._where(image)
            raise RegistryError(f"{where}: the manifest is not JSON", "invalid") from None
        if not isinstance(manifest, dict):
            raise RegistryError(f"{self._where(image)}: the manifest is not an object", "invalid")
        return claimed, manifest

    def config_digests(self, image: ImageReference) -> set[str]:
        """The config digests (what runtimes call the image ID) of the image's manifest, or of
        every manifest of its index: what a kubelet may report instead of a repo digest."""
        _, manifest = self.manifest(image)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            configs = set()
            for child in manifest.get("manifests") or []:
                digest = str(child.get("digest") or "")
                if DIGEST.match(digest):
                    _, sub = self.manifest(ImageReference.parse(f"{image.name}@{digest}"))
                    configs.add(str((sub.get("config") or {}).get("digest") or ""))
            return configs - {""}
        config = str((manifest.get("config") or {}).get("digest") or "")
        return {config} if config else set()

    # ----------------------------------------------------------------------- plumbing

    @staticmethod
    def _where(image: ImageReference) -> str:
        separator = "@" if image.digest else ":"
        return f"{image.host}/{image.repository}{separator}{image.reference}"

    def _manifest(self, method: str, image: ImageReference) -> tuple[dict[str, str], bytes]:
        host = _DOCKER_HUB_API if image.host == DOCKER_HUB else image.host
        path = f"/v2/{image.repository}/manifests/{image.reference}"
        schemes = ["https"] if self.tls_verify else ["https", "http"]
        unreachable: list[str] = []
        for scheme in schemes:
            url = f"{scheme}://{host}{path}"
            try:
                return self._authorized(method, url, image)
            except RegistryError as error:
                if error.kind != "unreachable" or error.status:
                    raise
                unreachable.append(str(error))
        raise RegistryError(
            f"registry {image.host} unreachable: " + "; ".join(unreachable), "unreachable"
        )

    def _authorized(
        self, method: str, url: str, image: ImageReference
    ) -> tuple[dict[str, str], bytes]:
        key = (image.host, image.repository)
        try:
            return self._send(method, url, self._tokens.get(key))
        except urllib.error.HTTPError as error:
            if error.code != 401:
                raise self._http_error(method, url, error) from None
            header = error.headers.get("WWW-Authenticate", "")
        scheme, params = _challenge(header)
        credentials = find_credentials(image.host, image.repository, self.authfile, self.environ)
        if scheme == "bearer" and params.get("realm"):
            authorization = f"Bearer {self._token(params, image, credentials)}"
        elif scheme == "basic" and credentials:
            authorization = _basic(credentials)
        else:
            raise RegistryError(
                f"{method} {url}: HTTP 401, and no credentials for {image.host} in "
                f"{', '.join(str(p) for p in auth_files(self.authfile, self.environ))} "
                f"(`buildah login {image.host}` writes them)",
                "denied",
                401,
            )
        self._tokens[key] = authorization
        try:
            return self._send(method, url, authorization)
        except urllib.error.HTTPError as error:
            raise self._http_error(method, url, error) from None

    def _token(
        self, params: dict[str, str], image: ImageReference, credentials: tuple[str, str] | None
    ) -> str:
        query = {"service": params.get("service", "")} if params.get("service") else {}
        query["scope"] = params.get("scope") or f"repository:{image.repository}:pull"
        realm = params["realm"]
        if not realm.startswith(("https://", "http://")):
            message = f"registry {image.host}: token realm {realm!r} is not a URL"
            raise RegistryError(message, "invalid")
        url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
        try:
            _, body = self._send("GET", url, _basic(credentials) if credentials else None)
        except urllib.error.HTTPError as error:
            raise self._http_error("GET", url.split("?")[0], error) from None
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            message = f"registry {image.host}: the token service sent no token"
            raise RegistryError(message, "invalid")
        return str(token)

    def _send(
        self, method: str, url: str, authorization: str | None
    ) -> tuple[dict[str, str], bytes]:
        headers = {"Accept": MANIFEST_ACCEPT, "User-Agent": "mlgitops"}
        if authorization:
            headers["Authorization"] = authorization
        request = urllib.request.Request(url, method=method, headers=headers)
        # Certificate checks off only for an explicit --no-tls-verify, as buildah was given.
        context = ssl._create_unverified_context() if not self.tls_verify else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as answer:
                return {k.lower(): v for k, v in answer.headers.items()}, answer.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise RegistryError(f"{url}: {reason}", "unreachable") from None

    @staticmethod
    def _http_error(method: str, url: str, error: urllib.error.HTTPError) -> RegistryError:
        code = error.code
        detail = ""
        try:
            errors = json.loads(error.read() or b"{}").get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError, OSError):
            pass
        message = f"{method} {url}: HTTP {code} {error.reason}" + (f" ({detail})" if detail else "")
        if code == 404:
            kind = "unknown"
        elif code in (401, 403):
            kind = "denied"
        elif code == 429 or code >= 500:
            kind = "unreachable"
        else:
            kind = "invalid"
        return RegistryError(message, kind, code)


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


# ------------------------------------------------------- the calls `image push` makes


def head_manifest_digest(
    host: str,
    repository: str,
    reference: str,
    *,
    tls_verify: bool = True,
    authfile: str | Path | None = None,
) -> str:
    """The registry's Docker-Content-Digest for a tag or digest of `host/repository`."""
    image = ImageReference.parse(_joined(host, repository, reference))
    return RegistryClient(tls_verify=tls_verify, authfile=authfile).digest(image)


def fetch_manifest(
    host: str,
    repository: str,
    reference: str,
    *,
    tls_verify: bool = True,
    authfile: str | Path | None = None,
) -> tuple[str, dict[str, Any]]:
    """(digest, manifest JSON) of `host/repository:reference`."""
    image = ImageReference.parse(_joined(host, repository, reference))
    return RegistryClient(tls_verify=tls_verify, authfile=authfile).manifest(image)


def _joined(host: str, repository: str, reference: str) -> str:
    separator = "@" if DIGEST.match(reference) else ":"
    return f"{host}/{repository}{separator}{reference}"
