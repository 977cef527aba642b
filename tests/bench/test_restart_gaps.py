"""bench/restart.py's gap split: a missing seq an ack promised is a loss, one no ack covered is the simulator's."""

from __future__ import annotations

import pytest

from bench.restart import split_gaps


class TestSplitGaps:
    """What one node's stored seqs and promised runs come to."""

    @pytest.mark.parametrize(
        ("stored", "promised", "expected"),
        [
            ([1, 2, 3, 4], [[1, 4]], (0, 0)),  # everything acked is there
            ([1, 2, 4, 5], [[1, 2], [4, 5]], (0, 1)),  # 3 never acked: dropped, not lost
            ([1, 2, 4, 5], [[1, 5]], (1, 0)),  # 3 acked and missing: lost
            ([1, 2], [[1, 4]], (2, 0)),  # acked beyond the top of the file: lost too
            ([2, 3], [], (0, 1)),  # seq 1 missing, never acked
            ([], [], (0, 0)),
        ],
    )
    def test_lost_and_dropped(self, stored: list[int], promised: list[list[int]], expected: tuple[int, int]) -> None:
        """Each missing seq is counted once, as lost if a promised run holds it, else as dropped."""
        assert split_gaps(stored, promised) == expected
