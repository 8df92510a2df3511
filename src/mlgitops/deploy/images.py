"""Which bytes a deploy runs: the release's image tag pinned to its manifest digest, and what the
pods report they run.

Git names the image by tag (`k8s/base/release.yaml`: the digest only exists once the image is
pushed, after the commit). A deploy asks the registry which manifest digest the tag names now
(`HEAD /v2/<repo>/manifests/<tag>`) and applies `repo:tag@sha256:...`, so every node pulls those
bytes whatever happens to the tag later. After the rollout the pods' `imageID`s must name the
same digest. Kubelets report it in several forms, all handled by `parse_image_id`:

- `repo@sha256:<manifest or index digest>` (containerd, CRI-O),
- `docker-pullable://repo@sha256:<digest>` (Docker through dockershim or cri-dockerd),
- `docker://sha256:<config digest>` or bare `sha256:<config digest>`: the image ID, when the
  runtime has no repo digest (an image loaded into the node, e.g. `kind load`); it is compared
  with the config digest(s) of the pinned manifest, asked from the registry.

A registry that cannot be asked (unreachable, no credentials) leaves the tag applied; then the
pods must agree among themselves and with the digest the history last recorded for the same tag,
and the digest they report is what the history records. `--require-digest` refuses instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mlgitops.deploy.history import DigestSource
from mlgitops.deploy.kube import Manifest
from mlgitops.errors import ImageDigestError, RegistryError
from mlgitops.registry import DIGEST, ImageReference, RegistryClient, pinned_reference
from mlgitops.release import CONTAINER_NAME

Log = Callable[[str], None]

_PULLABLE = re.compile(r"^(?:docker-pullable://)?(?P<repo>[^@]+)@(?P<digest>[^@]+)$")
_IMAGE_ID = re.compile(r"^(?:docker://)?(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class RegistryAccess:
    """How a deploy reaches the registry: the same switches as `mlgitops image push`."""

    tls_verify: bool = True
    authfile: Path | None = None
    require_digest: bool = False

    def client(self) -> RegistryClient:
        return RegistryClient(tls_verify=self.tls_verify, authfile=self.authfile)


@dataclass(frozen=True)
class ImagePin:
    """The image a deploy applies: Git's reference plus, when known, its manifest digest."""

    image: str  # as in Git: repo:tag (or already repo[:tag]@digest)
    digest: str = ""
    source: DigestSource = ""
    # For pods that report an image ID rather than a repo digest: the config digests the pinned
    # manifest (or its index) has, asked from the registry when first needed.
    configs: Callable[[], set[str]] | None = field(default=None, compare=False, repr=False)

    @property
    def applied(self) -> str:
        """What the Deployment gets: `repo:tag@sha256:...`, or the bare tag when unpinned."""
        return pinned_reference(self.image, self.digest)


# --------------------------------------------------------------------------- resolving


def _reference(image: str) -> ImageReference:
    try:
        return ImageReference.parse(image)
    except ValueError as error:
        raise ImageDigestError(str(error)) from None


def _configs_of(client: RegistryClient, ref: ImageReference) -> Callable[[], set[str]]:
    cache: list[set[str]] = []

    def configs() -> set[str]:
        if not cache:
            cache.append(client.config_digests(ref))
        return cache[0]

    return configs


def resolve(image: str, access: RegistryAccess, log: Log) -> ImagePin:
    """Pin `image` to the digest its registry serves for the tag now.

    An image pinned in Git already is used as it is. A tag the registry does not know, or a
    broken credentials file, is an ImageDigestError (nothing would run). A registry that cannot
    be asked gives an unpinned ImagePin and one line saying so, or with `require_digest` an
    ImageDigestError.
    """
    ref = _reference(image)
    client = access.client()
    if ref.digest:
        return ImagePin(image, ref.digest, "git", _configs_of(client, ref))
    try:
        digest = client.digest(ref)
    except RegistryError as error:
        if error.kind in ("unknown", "config"):
            raise ImageDigestError(
                f"cannot pin {image} to a digest: {error}"
                + ("; push it first (`mlgitops image push`)" if error.kind == "unknown" else "")
            ) from None
        if access.require_digest:
            raise ImageDigestError(
                f"cannot pin {image} to a digest (--require-digest): {error}"
            ) from None
        log(
            f"registry not asked: {error}; applying the tag {image} unpinned, "
            "and recording the digest the pods report"
        )
        return ImagePin(image)
    return ImagePin(image, digest, "registry", _configs_of(client, ref))


def restore(image: str, digest: str, access: RegistryAccess) -> ImagePin:
    """The pin of a history entry, exactly as recorded (a rollback never re-resolves the tag)."""
    pinned = _reference(f"{_reference(image).name}@{digest}")
    return ImagePin(image, digest, "history", _configs_of(access.client(), pinned))


# ----------------------------------------------------------------------------- pure


def with_image(objects: Iterable[Manifest], deployment: str, image: str) -> tuple[Manifest, ...]:
    """`objects` with the model container of `deployment` set to `image` (copies where changed)."""
    out = []
    for obj in objects:
        if obj.get("kind") == "Deployment" and obj.get("metadata", {}).get("name") == deployment:
            template = obj["spec"]["template"]
            containers = [
                {**c, "image": image} if c.get("name") == CONTAINER_NAME else c
                for c in template["spec"]["containers"]
            ]
            pod_spec = {**template["spec"], "containers": containers}
            obj = {**obj, "spec": {**obj["spec"], "template": {**template, "spec": pod_spec}}}
        out.append(obj)
    return tuple(out)


@dataclass(frozen=True)
class PodImage:
    """What one container's `imageID` says: a pullable repo digest, or only an image ID."""

    digest: str
    pullable: bool  # True: a manifest (or index) digest; False: the config digest (image ID)


def parse_image_id(value: str | None) -> PodImage | None:
    """Every form kubelets write into `status.containerStatuses[].imageID`; None if empty or
    unrecognized."""
    text = (value or "").strip()
    if not text:
        return None
    found = _IMAGE_ID.match(text)
    if found:
        return PodImage(found["digest"], pullable=False)
    found = _PULLABLE.match(text)
    if found and DIGEST.match(found["digest"]):
        return PodImage(found["digest"], pullable=True)
    return None


def container_image_id(pod: Manifest, container: str = CONTAINER_NAME) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return str(status.get("imageID") or "")
    return ""


@dataclass(frozen=True)
class RunningImage:
    """The bytes pods run (what the rollout check found), or are expected to run."""

    digest: str = ""  # the manifest (or index) digest: pullable as repo@digest
    image_id: str = ""  # the config digest, when pods report only that


@dataclass(frozen=True)
class Expected:
    """What the pods must run, and why (for the messages)."""

    image: RunningImage = RunningImage()
    why: str = ""
    # The config digests of `image.digest`'s manifest, for pods that report an image ID only.
    configs: Callable[[], set[str]] | None = None


def check_running(
    pods: list[Manifest], expected: Expected
) -> tuple[list[str], list[str], RunningImage]:
    """(problems, notes, what the pods run) for the model containers of `pods`.

    A pod whose imageID names other bytes than expected is a problem; so are pods that disagree
    among themselves (one tag, different bytes) and a pod that reports no imageID. A pod that
    reports only an image ID that nothing can be compared with is a note, not a problem: under a
    pinned reference the runtime checked the digest on pull.
    """
    problems: list[str] = []
    notes: list[str] = []
    reported: dict[str, PodImage] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        raw = container_image_id(pod)
        seen = parse_image_id(raw)
        if seen is None:
            problems.append(f"pod {name} reports no usable imageID ({raw!r})")
        else:
            reported[name] = seen
    want, why = expected.image, f" ({expected.why})" if expected.why else ""
    for name, seen in sorted(reported.items()):
        if seen.pullable:
            if want.digest and seen.digest != want.digest:
                problems.append(f"pod {name} runs {seen.digest}, not {want.digest}{why}")
            continue
        if want.image_id:
            if seen.digest != want.image_id:
                problems.append(f"pod {name} runs image {seen.digest}, not {want.image_id}{why}")
            continue
        if not want.digest:
            continue
        known = _known_configs(expected.configs)
        if known is None:
            notes.append(
                f"pod {name} reports only the image ID {seen.digest}; the registry could not "
                f"say whether that is the config of {want.digest}"
            )
        elif seen.digest not in known:
            problems.append(
                f"pod {name} runs image {seen.digest}, not the config of {want.digest}{why}"
            )
    digests = {seen.digest for seen in reported.values() if seen.pullable}
    ids = {seen.digest for seen in reported.values() if not seen.pullable}
    if len(digests) > 1 or len(ids) > 1:
        listing = ", ".join(f"{n} {s.digest}" for n, s in sorted(reported.items()))
        problems.append(f"the pods run different bytes under one tag: {listing}")
    running = RunningImage(
        digest=next(iter(digests)) if len(digests) == 1 else want.digest,
        image_id=next(iter(ids)) if len(ids) == 1 else "",
    )
    return problems, notes, running


def _known_configs(configs: Callable[[], set[str]] | None) -> set[str] | None:
    if configs is None:
        return None
    try:
        return configs()
    except RegistryError:
        return None
