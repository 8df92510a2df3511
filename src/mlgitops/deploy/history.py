"""The in-cluster deploy history: one ConfigMap per Deployment, one JSON entry per attempt.

Keys are zero-padded sequence numbers, so the ConfigMap sorts chronologically and `--to N`
names an entry. Writes are compare-and-swap on resourceVersion and retried on conflict, so two
writers can never lose each other's entries; the oldest entries are dropped beyond a cap to stay
far below the 1 MiB object limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mlgitops.deploy.kube import Kube, KubeError
from mlgitops.errors import DeployError
from mlgitops.registry import pinned_reference

HISTORY_LIMIT = 50
KEY_WIDTH = 6
CONFLICT_RETRIES = 8
HISTORY_LABELS = {"app.kubernetes.io/managed-by": "mlgitops", "mlgitops.io/role": "deploy-history"}

Kind = Literal["deploy", "auto-rollback", "rollback"]
# interrupted: SIGTERM or SIGINT ended the attempt; what it applied may be running or rolling out.
Outcome = Literal["succeeded", "failed", "interrupted"]
# registry: asked at deploy time; git: pinned in the manifests already; history: restored from
# the entry a rollback redeploys; pods: the registry could not be asked, the pods reported it;
# attestation: the registry could not be asked, the digest the release's attestation signed.
DigestSource = Literal["registry", "git", "history", "pods", "attestation", ""]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history_name(deployment: str) -> str:
    return f"mlgitops-history-{deployment}"


class HistoryEntry(BaseModel):
    """One deploy attempt. `seq` is 0 until the entry is stored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    seq: int = 0
    kind: Kind
    outcome: Outcome
    environment: str
    revision: str  # as requested: HEAD, a tag, a sha
    commit: str
    image: str  # as Git names it: repo:tag
    model_hash: str
    bento_tag: str = ""
    started_at: str
    finished_at: str
    deployed_by: str = ""
    message: str = ""
    # For rollbacks: the entry whose revision was redeployed.
    rollback_of: int | None = None
    # The bytes: the manifest digest applied (repo:tag@digest) or, unpinned, the one the pods
    # reported; `image_id` is the config digest when the pods reported nothing else.
    image_digest: str = ""
    image_id: str = ""
    digest_source: DigestSource = ""
    # The release's signed attestation held (`mlgitops verify`); False: deployed anyway with
    # `--allow-unverified`; None: not checked (entries written before attestations, and the
    # automatic re-apply of the last success after a failed rollout).
    verified: bool | None = None
    allow_unverified: bool = False

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def applied_image(self) -> str:
        """The reference that pins these bytes (`repo:tag@digest`), else the tag."""
        return pinned_reference(self.image, self.image_digest)


# ------------------------------------------------------------------------------------- pure


def parse_entries(data: Mapping[str, str] | None) -> list[HistoryEntry]:
    """Entries in sequence order; keys that are not ours or not valid JSON are skipped."""
    entries = []
    for key, value in (data or {}).items():
        if not key.isdigit():
            continue
        try:
            entry = HistoryEntry.model_validate({**json.loads(value), "seq": int(key)})
        except (ValueError, ValidationError):
            continue
        entries.append(entry)
    return sorted(entries, key=lambda e: e.seq)


def add_entry(
    data: Mapping[str, str] | None, entry: HistoryEntry, limit: int = HISTORY_LIMIT
) -> tuple[dict[str, str], HistoryEntry]:
    """New ConfigMap data with `entry` appended under the next sequence number, capped."""
    current = dict(data or {})
    numbers = [int(k) for k in current if k.isdigit()]
    seq = max(numbers, default=0) + 1
    stored = entry.model_copy(update={"seq": seq})
    current[f"{seq:0{KEY_WIDTH}d}"] = stored.model_dump_json(exclude={"seq"})
    keys = sorted(k for k in current if k.isdigit())
    for key in keys[: max(0, len(keys) - limit)]:
        del current[key]
    return current, stored


def last_success(entries: list[HistoryEntry]) -> HistoryEntry | None:
    return next((e for e in reversed(entries) if e.succeeded), None)


def last_bytes_of(entries: list[HistoryEntry], image: str) -> HistoryEntry | None:
    """The newest successful entry that ran `image` (the same tag) with known bytes."""
    return next(
        (
            e
            for e in reversed(entries)
            if e.succeeded and e.image == image and (e.image_digest or e.image_id)
        ),
        None,
    )


# ----------------------------------------------------------------------------- in-cluster


class History:
    """Read and append the history ConfigMap of one Deployment."""

    def __init__(self, kube: Kube, namespace: str, deployment: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = history_name(deployment)

    def _get(self) -> dict | None:
        return self.kube.get("v1", "ConfigMap", self.name, self.namespace)

    def entries(self) -> list[HistoryEntry]:
        return parse_entries((self._get() or {}).get("data"))

    def append(self, entry: HistoryEntry) -> HistoryEntry:
        return self._update(lambda data: add_entry(data, entry))

    def _update(
        self, change: Callable[[dict[str, str] | None], tuple[dict[str, str], HistoryEntry]]
    ) -> HistoryEntry:
        for _ in range(CONFLICT_RETRIES):
            live = self._get()
            data, stored = change((live or {}).get("data"))
            try:
                if live is None:
                    self.kube.create(
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {
                                "name": self.name,
                                "namespace": self.namespace,
                                "labels": dict(HISTORY_LABELS),
                            },
                            "data": data,
                        }
                    )
                else:
                    live["data"] = data
                    # resourceVersion stays as read: the PUT fails with 409 if anyone wrote since.
                    self.kube.replace(live)
                return stored
            except KubeError as error:
                if error.status == 409:
                    continue  # someone else wrote first; re-read and append again
                raise DeployError(f"cannot record the deploy in {self.name}: {error}") from None
        raise DeployError(f"cannot record the deploy in {self.name}: too many concurrent writers")
