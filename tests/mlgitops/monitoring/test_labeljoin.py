"""The one label join: what a label names, and each conflict policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlgitops.monitoring.labeljoin import join_labels
from mlgitops.monitoring.logs import KEY, LABEL, REQUEST_KEY


def _predictions(*rows: tuple[str | None, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {KEY: [r[0] for r in rows], REQUEST_KEY: [r[1] for r in rows]}, dtype=object
    )


def _labels(*rows: tuple[str | None, str | None, int, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            KEY: pd.Series([r[0] for r in rows], dtype=object),
            REQUEST_KEY: pd.Series([r[1] for r in rows], dtype=object),
            LABEL: [float(r[2]) for r in rows],
            "label_time": pd.to_datetime([r[3] for r in rows], utc=True),
        }
    )


PREDICTIONS = _predictions(("t1", "a:0"), ("t2", "a:1"), (None, "b:0"), ("t3", "c:0"))


def _truth(join) -> list[float | None]:
    return [None if np.isnan(v) else v for v in join.truth]


def test_a_label_names_its_id_else_the_prediction_of_its_request_and_row() -> None:
    labels = _labels(
        ("t1", None, 1, "2025-07-02"),
        (None, "a:1", 0, "2025-07-02"),  # the feedback log's way: stands for t2
        (None, "b:0", 1, None),  # a prediction without an id: its request key is its key
        (None, "z:9", 1, "2025-07-02"),  # names no prediction
        ("t9", None, 0, "2025-07-02"),
    )
    join = join_labels(PREDICTIONS, labels, on_conflict="latest")
    assert _truth(join) == [1.0, 0.0, 1.0, None]
    assert join.keys.tolist() == ["t1", "t2", "b:0", "z:9", "t9"]
    assert join.known.tolist() == [True, True, True, False, False]
    assert join.label_time.iloc[0] == pd.Timestamp("2025-07-02", tz="UTC")
    assert pd.isna(join.label_time.iloc[2])


def test_latest_takes_the_ids_latest_label_else_the_request_keys() -> None:
    labels = _labels(
        ("t1", None, 1, "2025-07-01"),
        (None, "a:0", 0, "2025-07-02"),  # later, but the id's own label ranks first
        ("t2", None, 1, "2025-07-05"),
        ("t2", None, 0, "2025-07-04"),
        ("t3", None, 1, None),  # no time: the earliest
        ("t3", None, 0, "2025-07-01"),
    )
    join = join_labels(PREDICTIONS, labels, on_conflict="latest")
    assert _truth(join) == [1.0, 1.0, None, 0.0]
    assert not join.conflicting.any()
    # Only labels arrived by as_of count.
    early = join_labels(
        PREDICTIONS, labels, on_conflict="latest", as_of=pd.Timestamp("2025-07-04T12:00Z")
    )
    assert _truth(early) == [1.0, 0.0, None, 0.0]
    # A retried id logged twice: a request-keyed label labels its own row only.
    retried = _predictions(("t1", "a:0"), ("t1", "b:0"))
    join = join_labels(retried, _labels((None, "b:0", 1, None)), on_conflict="latest")
    assert _truth(join) == [None, 1.0]


def test_refuse_leaves_an_entity_labelled_both_ways_unlabelled_and_marks_its_rows() -> None:
    labels = _labels(
        ("t1", None, 1, "2025-07-03"),
        (None, "a:0", 0, "2025-07-02"),  # t1 again, the other way: a conflict
        ("t2", None, 1, "2025-07-05"),
        ("t2", None, 1, "2025-07-04"),  # agreeing twice is no conflict
        ("t9", None, 1, None),
        ("t9", None, 0, None),  # unknown ids are unknown, not conflicting
    )
    join = join_labels(PREDICTIONS, labels, on_conflict="refuse")
    assert _truth(join) == [None, 1.0, None, None]
    assert join.conflicting.tolist() == [True, True, False, False, False, False]
    assert join.known.tolist() == [True, True, True, True, False, False]


def test_no_labels_and_a_bad_policy() -> None:
    join = join_labels(PREDICTIONS, _labels(), on_conflict="refuse")
    assert _truth(join) == [None] * 4
    assert join.label_time.isna().all()
    with pytest.raises(ValueError, match="on_conflict must be 'latest' or 'refuse', not 'first'"):
        join_labels(PREDICTIONS, _labels(), on_conflict="first")  # type: ignore[arg-type]
