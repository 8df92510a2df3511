"""Joining labels to logged predictions: the one join the monitor, `ab status` and ingest use.

A label names a prediction by its entity id, or by the `request_id:row` of the prediction (the
/feedback log's way), which stands for that prediction's entity key (its id when it has one,
else the request key itself: mlgitops.logline). When a prediction has several labels,
`on_conflict` says which counts:
- "latest": the latest label of the prediction's id (by `label_time`; a label without one
  counts as the earliest, file order breaks ties), else the latest of its request key: the
  monitor and `ab status`, where a corrected label replaces the first;
- "refuse": every label naming the entity must agree; an entity labelled both 0 and 1 gets no
  label and its label rows are marked `conflicting` (ingest sets them aside: it never guesses a
  training label).

Frames are those of mlgitops.monitoring.logs (`read_predictions`, `read_labels`). Lookups are
Arrow hash joins (`index_in`): pandas' map is several times slower at a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mlgitops.logline import entity_keys
from mlgitops.monitoring.logs import KEY, LABEL, REQUEST_KEY

OnConflict = Literal["latest", "refuse"]
# A label time not known, as int64 ns.
NO_TIME = int(np.iinfo(np.int64).min)
LABEL_TIME = "label_time"


@dataclass(frozen=True)
class LabelJoin:
    """Per prediction: `truth` (0/1, NaN: no label) and `label_time` (NaT: none or unknown).
    Per label row: `keys` (the entity key it names), `known` (a prediction has that key) and
    `conflicting` (on_conflict="refuse": its entity is labelled both 0 and 1)."""

    truth: np.ndarray
    label_time: pd.Series
    keys: pd.Series
    known: np.ndarray
    conflicting: np.ndarray


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    on_conflict: OnConflict,
    as_of: pd.Timestamp | None = None,
) -> LabelJoin:
    """Each prediction's label under `on_conflict`, from the labels arrived by `as_of` (all
    when None; a label without a time counts as arrived)."""
    if on_conflict not in ("latest", "refuse"):
        raise ValueError(f"on_conflict must be 'latest' or 'refuse', not {on_conflict!r}")
    if as_of is not None and len(labels):
        arrived = labels[LABEL_TIME].isna() | (labels[LABEL_TIME] <= as_of)
        labels = labels[arrived.to_numpy()]
    entities = entity_keys(predictions[KEY], predictions[REQUEST_KEY])
    keys = _label_keys(labels, predictions, entities)
    known = keys.notna().to_numpy() & (_positions(keys, entities) >= 0)
    conflicting = np.zeros(len(labels), dtype=bool)
    if on_conflict == "refuse" and len(labels):
        values = pd.DataFrame({"key": keys.to_numpy(), "truth": labels[LABEL].to_numpy()})[known]
        counts = values.groupby("key")["truth"].nunique()
        clashing = counts.index[counts > 1]
        conflicting = known & keys.isin(clashing).to_numpy()
    rows = labels[[LABEL, LABEL_TIME]].reset_index(drop=True)
    if on_conflict == "latest":
        truth, times = LatestLabels.of(labels).lookup(predictions, nat=np.datetime64("NaT"))
    else:  # every label naming the entity agrees, or none counts
        table = _latest(rows.assign(key=keys.to_numpy())[known & ~conflicting])
        truth, times = _lookup([(entities, table)], len(predictions), np.datetime64("NaT"))
    return LabelJoin(
        truth=truth,
        label_time=pd.Series(times).dt.tz_localize("UTC"),
        keys=keys,
        known=known,
        conflicting=conflicting,
    )


def _latest(table: pd.DataFrame) -> pd.DataFrame:
    """Each key's latest label (stable: among labels of one time, or none, the one read last)."""
    table = table[table["key"].notna().to_numpy()]
    table = table.sort_values(LABEL_TIME, kind="stable", na_position="first")
    return table.drop_duplicates("key", keep="last").reset_index(drop=True)


def _lookup(
    tiers: list[tuple[pd.Series, pd.DataFrame]], n: int, nat: object
) -> tuple[np.ndarray, np.ndarray]:
    """Per prediction, the label of the first tier whose key it has, and that label's time
    (UTC, ns; `nat` where unknown: NaT as datetime64, or the smallest int64)."""
    truth = np.full(n, np.nan)
    as_ints = isinstance(nat, int)
    times = np.full(n, nat, dtype=np.int64 if as_ints else "datetime64[ns]")
    for wanted, table in tiers:
        if not len(table):
            continue
        position = _positions(wanted, table["key"])
        hit = (position >= 0) & np.isnan(truth)
        truth[hit] = table[LABEL].to_numpy(dtype="float64")[position[hit]]
        label_times = pd.DatetimeIndex(table[LABEL_TIME]).tz_convert("UTC").tz_localize(None)
        found = label_times.to_numpy(dtype="datetime64[ns]")
        times[hit] = (found.view(np.int64) if as_ints else found)[position[hit]]
    return truth, times


@dataclass(frozen=True)
class LatestLabels:
    """The "latest" rule's two lookup tables, built once from the labels (arrived by `as_of`)
    and applied to any block of predictions: a prediction's own id ranks first, its request
    key second (a corrected label comes under the key it corrects), each key's latest label
    winning. Holds one row per distinct labelled key."""

    by_id: pd.DataFrame
    by_request: pd.DataFrame

    @classmethod
    def of(cls, labels: pd.DataFrame, as_of: pd.Timestamp | None = None) -> LatestLabels:
        if as_of is not None and len(labels):
            arrived = labels[LABEL_TIME].isna() | (labels[LABEL_TIME] <= as_of)
            labels = labels[arrived.to_numpy()]
        rows = labels[[LABEL, LABEL_TIME]].reset_index(drop=True)
        return cls(
            _latest(rows.assign(key=labels[KEY].to_numpy(dtype=object))),
            _latest(rows.assign(key=labels[REQUEST_KEY].to_numpy(dtype=object))),
        )

    def lookup(
        self, predictions: pd.DataFrame, nat: object = NO_TIME
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each prediction's label (NaN: none) and label time (ns; `nat` where unknown)."""
        tiers = [(predictions[KEY], self.by_id), (predictions[REQUEST_KEY], self.by_request)]
        return _lookup(tiers, len(predictions), nat)


def _label_keys(labels: pd.DataFrame, predictions: pd.DataFrame, entities: pd.Series) -> pd.Series:
    """The entity key each label row names: its id, else the entity key of the prediction whose
    request key it gives (the request key itself when no prediction has it; None without)."""
    keys = pd.Series(labels[KEY].to_numpy(dtype=object), dtype=object)
    requests = pd.Series(labels[REQUEST_KEY].to_numpy(dtype=object), dtype=object)
    by_request = (keys.isna() & requests.notna()).to_numpy()
    if by_request.any():
        wanted = requests[by_request]
        position = _positions(wanted, predictions[REQUEST_KEY])
        named = entities.to_numpy(dtype=object)[np.maximum(position, 0)]
        keys[by_request] = np.where(position >= 0, named, wanted.to_numpy(dtype=object))
    return keys


def _positions(wanted: pd.Series, known: pd.Series) -> np.ndarray:
    """Where each of `wanted` is in `known` (its first place), -1 where it is not (or null)."""
    import pyarrow.compute as pc

    if not len(wanted) or not len(known):
        return np.full(len(wanted), -1, dtype=np.int64)
    needles, haystack = _strings(wanted), _strings(known)
    found = pc.index_in(needles, value_set=haystack, skip_nulls=True)
    return pc.fill_null(found, -1).to_numpy()


def _strings(values: pd.Series) -> object:
    """`values` as an Arrow string array (nulls kept); other types spelled with str()."""
    import pyarrow as pa

    column = values.astype(object)
    try:
        return pa.array(column.to_numpy(), type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        spelled = column.map(str, na_action="ignore").to_numpy()
        return pa.array(spelled, type=pa.string(), from_pandas=True)
