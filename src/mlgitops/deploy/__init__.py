"""GitOps deploys: render a Git revision's manifests, apply them server-side, wait, record.

Submodules are small and mostly pure: `render` (Git objects -> objects), `kube` (the API
client), `apply` (server-side apply and the dry-run diff), `rollout` (waiting and checking the
pods), `images` (the digest a deploy pins and the pods report), `history` (the in-cluster deploy
log), `lock` (the per-environment Lease), `signals` (SIGTERM/SIGINT) and `deploy` (the
orchestration behind `mlgitops deploy|rollback|history`).

Nothing here imports `mlgitops.image`: deploying never builds an image (the registry client
is `mlgitops.registry`).
"""

from __future__ import annotations

FIELD_MANAGER = "mlgitops"
# The deploy Lease: how long it lasts without a renewal, and how long a deploy waits for one
# held by another (long enough to see a crashed holder's lease expire).
DEFAULT_LEASE_SECONDS = 60
DEFAULT_LOCK_WAIT_SECONDS = 90.0

__all__ = ["DEFAULT_LEASE_SECONDS", "DEFAULT_LOCK_WAIT_SECONDS", "FIELD_MANAGER"]
