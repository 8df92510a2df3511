"""GitOps deploys: render a Git revision's manifests, apply them server-side, wait, record.

Submodules are small and mostly pure: `render` (Git objects -> objects), `kube` (the API
client), `apply` (server-side apply and the dry-run diff), `rollout` (waiting and checking the
pods), `history` (the in-cluster deploy log), `lock` (the per-environment Lease) and `deploy`
(the orchestration behind `mlgitops deploy|rollback|history`).

Nothing here imports `mlgitops.image`: deploying never builds an image.
"""

from __future__ import annotations

FIELD_MANAGER = "mlgitops"

__all__ = ["FIELD_MANAGER"]
