"""The bounded backlog: drop-oldest, trim by cumulative ack, replay in order."""

from __future__ import annotations

import pytest

from agent.backlog import Backlog


class TestBacklog:
    def test_replays_in_order_after_the_held_seq(self) -> None:
        """Frames after the collector's held seq come back oldest first."""
        backlog = Backlog(max_samples=10)
        for seq in range(1, 6):
            backlog.append(seq, b"x" * seq)
        assert [seq for seq, _ in backlog.after(2)] == [3, 4, 5]

    def test_cumulative_ack_trims(self) -> None:
        """An ack for seq 3 forgets 1..3 and their bytes."""
        backlog = Backlog(max_samples=10)
        for seq in range(1, 6):
            backlog.append(seq, b"ab")
        assert backlog.ack(3) == 3
        assert len(backlog) == 2
        assert backlog.bytes == 4
        assert backlog.ack(2) == 0

    def test_drops_oldest_when_full_and_counts(self) -> None:
        """Over max_samples the oldest go first and the dropped count grows."""
        backlog = Backlog(max_samples=3)
        for seq in range(1, 8):
            backlog.append(seq, b"f")
        assert [seq for seq, _ in backlog.after(0)] == [5, 6, 7]
        assert backlog.dropped == 4

    def test_bounded_by_bytes(self) -> None:
        """With a byte bound, enough oldest frames are dropped to fit, but the newest is always kept."""
        backlog = Backlog(max_samples=100, max_bytes=10)
        for seq in range(1, 5):
            backlog.append(seq, b"1234")
        assert [seq for seq, _ in backlog.after(0)] == [3, 4]
        assert backlog.bytes == 8
        backlog.append(5, b"x" * 50)
        assert [seq for seq, _ in backlog.after(0)] == [5]
        assert backlog.dropped == 4

    def test_rejects_out_of_order_seq(self) -> None:
        """Appending a seq that is not newer is a programming error."""
        backlog = Backlog(max_samples=3)
        backlog.append(2, b"")
        with pytest.raises(RuntimeError, match="expected seq > 2"):
            backlog.append(2, b"")
