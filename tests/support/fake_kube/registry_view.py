"""What the fake kubelet pulls: a registry as the nodes see it, tag -> manifest digest.

A pod's container gets the imageID a real kubelet would report after pulling its image:
`repo@sha256:<manifest digest>` (containerd, CRI-O; `docker-pullable://repo@...` with
`image_id_format = "docker"`, or the bare config digest `sha256:...` with "config", as for an
image loaded into the node). The digest is the one pinned in the reference (`repo:tag@sha256:...`
pulls exactly that, if the registry has it) or the one the view holds for the tag at the moment
the pod starts; a pod keeps what it pulled, so `push()` of another digest for a tag is a
re-pushed tag that only new pods see.

With `implicit` (the default) a tag nobody pushed is there anyway, with a digest derived from
the reference, so tests that do not care about digests need no set-up; with `implicit = False`
such a pull fails (ErrImagePull), as a pinned digest the view never held always does.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field


def derived_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_reference(image: str) -> tuple[str, str, str]:
    """`name:tag@digest` -> (name, tag, digest), tag and digest possibly empty."""
    rest, _, digest = image.partition("@")
    name, tag = rest, ""
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1 :]
    return name, tag, digest


@dataclass
class RegistryView:
    implicit: bool = True
    image_id_format: str = "containerd"  # or "docker", "config"
    _tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, tag) -> digest
    _configs: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, digest) -> config
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, image: str, digest: str | None = None, config: str | None = None) -> str:
        """Point `image` (name:tag) at `digest` (derived from the reference if None)."""
        name, tag, _ = split_reference(image)
        digest = digest or derived_digest(image)
        with self._lock:
            self._tags[(name, tag or "latest")] = digest
            self._configs[(name, digest)] = config or derived_digest(f"config of {digest}")
        return digest

    def digest_of(self, image: str) -> str | None:
        """The manifest digest a pull of `image` gets now, or None (the pull fails)."""
        name, tag, pinned = split_reference(image)
        with self._lock:
            if pinned:
                return pinned if (name, pinned) in self._configs else None
            found = self._tags.get((name, tag or "latest"))
        if found is None and self.implicit:
            return self.push(image)
        return found

    def image_id(self, image: str, digest: str) -> str:
        name, _, _ = split_reference(image)
        if self.image_id_format == "config":
            with self._lock:
                return self._configs[(name, digest)]
        prefix = "docker-pullable://" if self.image_id_format == "docker" else ""
        return f"{prefix}{name}@{digest}"

    def clear(self) -> None:
        with self._lock:
            self._tags.clear()
            self._configs.clear()
