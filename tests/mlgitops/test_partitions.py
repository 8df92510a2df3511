"""Per-partition sums replay numpy's pairwise summation bit for bit, whatever the partitioning."""

from __future__ import annotations

import numpy as np
import pytest

from mlgitops import partitions


def _split(values: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    return np.split(values, sorted(cuts))


@pytest.mark.parametrize("size", [1, 7, 8, 9, 127, 128, 129, 1000, 8193, 30000, 250_001])
def test_pairwise_total_is_numpys_sum_for_any_cut(size):
    rng = np.random.default_rng(size)
    # Wide magnitudes so that the order of additions shows in the last bits.
    values = rng.standard_normal(size) * 10.0 ** rng.integers(-3, 6, size)
    for trial in range(5):
        cuts = rng.integers(0, size + 1, trial * 3).tolist()  # empty pieces included
        pieces = _split(values, cuts)
        starts = partitions.offsets([piece.size for piece in pieces])
        parts = [
            partitions.pairwise_pieces(piece, start, size)
            for piece, start in zip(pieces, starts, strict=True)
        ]
        assert partitions.pairwise_total(parts, size) == np.add.reduce(values)
        assert partitions.pairwise_total(parts, size) == values.sum()


def test_a_partition_sends_little_more_than_log_rows():
    values = np.ones(1_000_000)
    nodes, loose = partitions.pairwise_pieces(values[123_457:654_321], 123_457, values.size)
    assert len(nodes) <= 2 * 20
    assert len(loose) <= 2 * 128


def test_offsets_and_first_position():
    assert partitions.offsets([3, 0, 4, 1]) == [0, 3, 3, 7]
    assert partitions.first_position(np.array([False, True, True])) == 1
    assert partitions.first_position(np.array([False, False])) is None
