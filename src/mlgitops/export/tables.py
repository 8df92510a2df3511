"""DataFrame <-> the raw column lists every exporter takes (None for missing)."""

from __future__ import annotations

import math

import pandas as pd


def _plain(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def columns_of(frame: pd.DataFrame, names: list[str]) -> list[list[object]]:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        from mlgitops.errors import DataError

        raise DataError(f"the table has no column {missing[0]!r}")
    return [[_plain(v) for v in frame[name].tolist()] for name in names]
