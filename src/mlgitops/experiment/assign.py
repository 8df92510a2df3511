"""Which arm a request row lands in: a salted hash of its assignment key.

sha256(salt, key) read as a number in [0, 1); below the challenger's share means the challenger.
The same key always lands in the same arm (in every worker, pod and restart), the split is exact
in expectation without a service mesh, and a new salt reshuffles the keys for a new experiment.
Imported by the serving hot path: standard library only.
"""

from __future__ import annotations

import hashlib

from mlgitops.profile import normalize_category

CHAMPION, CHALLENGER = "champion", "challenger"
# Rows without a key value: served by the champion, left out of the analysis (not randomised).
UNASSIGNED = "unassigned"
_SCALE = float(1 << 64)


def unit_value(key_value: object) -> str | None:
    """The key as the hash sees it: the one spelling of a category (12, 12.0 and "12" agree)."""
    return normalize_category(key_value)


def bucket(salt: str, key: str) -> float:
    """The key's position in [0, 1): the first 8 bytes of sha256(salt NUL key)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(salt: str, share: float, key_value: object) -> str:
    """CHALLENGER for a share of the keys, CHAMPION for the rest, UNASSIGNED without a key."""
    key = unit_value(key_value)
    if key is None:
        return UNASSIGNED
    return CHALLENGER if bucket(salt, key) < share else CHAMPION
