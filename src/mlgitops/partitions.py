"""Per-partition passes over a table, merged exactly on the driver.

One implementation serves pandas and Dask: a pass is a function of (partition, its index) that
returns a small result (bounded by bins, categories or log(rows), never by rows); the driver
receives the results in partition order and merges them by rules that do not depend on where the
partition boundaries fall. A pandas DataFrame is one partition and runs in-process; a Dask
DataFrame's partitions run on whatever scheduler is current (this module never creates one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

# numpy's pairwise summation (numpy/_core/src/umath/loops_utils.h.src): leaves of at most this
# many values are summed with eight accumulators, longer runs split near the middle.
_PAIRWISE_BLOCK = 128


def is_dask(frame: Any) -> bool:
    return type(frame).__module__.startswith("dask.")


def partitions_of(frame: Any, columns: list[str] | None = None) -> list[Any]:
    """The partitions of a pandas DataFrame (itself) or a Dask DataFrame (delayed pieces),
    holding only `columns` when given (a Parquet-backed Dask frame then reads only those)."""
    if is_dask(frame):
        return list((frame if columns is None else frame[columns]).to_delayed())
    return [frame]


def run_pass(parts: Sequence[Any], work: Callable[..., T], *args: Any, **kwargs: Any) -> list[T]:
    """`work(partition, index, *args)` for every partition, results in partition order."""
    if parts and not isinstance(parts[0], _pandas_types()):
        import dask

        from mlgitops.engine import compute

        tasks = [
            dask.delayed(work, pure=True)(part, index, *args, **kwargs)
            for index, part in enumerate(parts)
        ]
        # On the engine of the enclosing `running` block: progress on a terminal, and a dead
        # worker's partition named in one line.
        return list(compute(*tasks, label=work.__name__.strip("_").replace("_", " ")))
    return [work(part, index, *args, **kwargs) for index, part in enumerate(parts)]


def _pandas_types() -> tuple[type, ...]:
    import pandas as pd

    return (pd.DataFrame, pd.Series)


def offsets(counts: Sequence[int]) -> list[int]:
    """Global position of each partition's first item, given the items per partition."""
    return [int(x) for x in np.concatenate(([0], np.cumsum(counts, dtype=np.int64)[:-1]))]


# numpy's float64 sum is a pairwise summation over the whole array, so its last bits depend on
# the positions of the values, not on any partitioning. A partition knows its global position
# (after a counting pass), sends the sums of the summation tree's nodes it holds whole (at most
# two per level) and the raw values of the at most two leaves it shares with a neighbour; the
# driver evaluates the same tree. The result is bit-identical to numpy's sum of the concatenation.
PairwisePieces = tuple[dict[tuple[int, int], float], dict[int, float]]


def pairwise_pieces(values: np.ndarray, offset: int, total: int) -> PairwisePieces:
    nodes: dict[tuple[int, int], float] = {}
    loose: dict[int, float] = {}
    low, high = offset, offset + values.size

    def visit(start: int, length: int) -> None:
        end = start + length
        if end <= low or start >= high:
            return
        if low <= start and end <= high:
            nodes[(start, length)] = float(np.add.reduce(values[start - low : end - low]))
            return
        if length <= _PAIRWISE_BLOCK:
            for position in range(max(start, low), min(end, high)):
                loose[position] = float(values[position - low])
            return
        half = length // 2
        half -= half % 8
        visit(start, half)
        visit(start + half, length - half)

    if total and values.size:
        visit(0, total)
    return nodes, loose


def pairwise_total(pieces: Sequence[PairwisePieces], total: int) -> float:
    """numpy's float64 sum of all values, from every partition's pieces."""
    nodes: dict[tuple[int, int], float] = {}
    loose: dict[int, float] = {}
    for part_nodes, part_loose in pieces:
        nodes.update(part_nodes)
        loose.update(part_loose)

    def value(start: int, length: int) -> float:
        if (start, length) in nodes:
            return nodes[(start, length)]
        if length <= _PAIRWISE_BLOCK:
            leaf = np.array([loose[i] for i in range(start, start + length)], dtype="float64")
            return float(np.add.reduce(leaf))
        half = length // 2
        half -= half % 8
        return value(start, half) + value(start + half, length - half)

    return value(0, total) if total else 0.0


def first_position(flags: pd.Series | np.ndarray) -> int | None:
    """Position of the first True, or None."""
    array = np.asarray(flags, dtype=bool)
    return int(array.argmax()) if array.any() else None
