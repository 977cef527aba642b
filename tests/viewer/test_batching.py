"""Tests of viewer.batching: merging the stream latest-per-node, without Qt or sockets."""

from __future__ import annotations

from tests.support.messages import entry, snapshot, update
from viewer.batching import PendingBatch


class TestPendingBatch:
    def test_empty_takes_nothing(self) -> None:
        """Nothing received means no batch for the UI."""
        pending = PendingBatch()
        assert not pending
        assert pending.take() is None

    def test_updates_merge_to_latest_per_node(self) -> None:
        """Ten updates of one node become one entry with the last status and sample."""
        pending = PendingBatch()
        for seq in range(1, 11):
            pending.add(update(entry("a", seq=seq, cpu=float(seq), full=False)))
        batch = pending.take()
        assert batch is not None
        assert not batch.is_snapshot
        assert batch.messages == 10
        assert list(batch.entries) == ["a"]
        merged = batch.entries["a"]
        assert merged.status.last_seq == 10
        assert merged.last_sample is not None
        assert merged.last_sample.cpu_percent == 10.0
        assert pending.take() is None

    def test_merge_keeps_facts_from_an_earlier_update(self) -> None:
        """A later status-only entry does not drop facts that arrived earlier in the same batch."""
        pending = PendingBatch()
        pending.add(update(entry("a", seq=1, full=True)))
        pending.add(update(entry("a", seq=2, full=False)))
        batch = pending.take()
        assert batch is not None
        assert batch.entries["a"].facts is not None
        assert batch.entries["a"].status.last_seq == 2

    def test_snapshot_supersedes_earlier_updates(self) -> None:
        """A snapshot replaces whatever was pending, and later updates merge into it."""
        pending = PendingBatch()
        pending.add(update(entry("old"), removed=("gone",)))
        pending.add(snapshot("a", "b"))
        pending.add(update(entry("b", seq=5, full=False), removed=("a",)))
        batch = pending.take()
        assert batch is not None
        assert batch.is_snapshot
        assert sorted(batch.entries) == ["b"]
        assert batch.entries["b"].status.last_seq == 5
        assert batch.entries["b"].history is not None  # kept from the snapshot
        assert batch.removed == frozenset()

    def test_removed_then_back(self) -> None:
        """A node removed and then seen again in the same batch is an entry, not a removal."""
        pending = PendingBatch()
        pending.add(update(entry("a", seq=1)))
        pending.add(update(removed=("a", "b")))
        pending.add(update(entry("a", seq=1)))
        batch = pending.take()
        assert batch is not None
        assert list(batch.entries) == ["a"]
        assert batch.removed == frozenset({"b"})
