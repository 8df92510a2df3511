"""The base of every typed record, artifact and config section: immutable once built, and an
unknown key is an error rather than silently dropped (a misspelt field must not pass)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    # protected_namespaces=(): fields such as `model_hash` and `model_type` are ours to name.
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
