"""The bits of the registry HTTP API (v2) that verify a push: the manifest digest a registry
serves for a tag or digest, and the manifest itself."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from mlgitops.errors import ImageBuildError

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
