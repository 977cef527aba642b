"""Tests of viewer.batching: merging the stream latest-per-node, without Qt or sockets."""

from __future__ import annotations

from dataclasses import replace

from pytestqt.qtbot import QtBot

from tests.support.messages import WALL_T0, entry, snapshot, update
from tests.viewer.helpers import batch_of
from viewer.batching import PendingBatch, split_batch
from viewer.model import NodeTableModel


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


class TestSplitBatch:
    def test_slices_applied_in_order_leave_the_table_as_the_whole_batch(self, qtbot: QtBot) -> None:
        """A 7-node update cut into slices of 3 gives the same rows, states and removals as applying it whole."""
        start = batch_of(snapshot("a", "b", "gone"))
        later = batch_of(update(*(entry(f"n-{index}", seq=2) for index in range(6)), entry("a", "stale", seq=3)))
        later = replace(later, removed=frozenset({"gone"}))
        whole, sliced = NodeTableModel(), NodeTableModel()
        for model in (whole, sliced):
            model.apply_batch(start, WALL_T0)
        whole.apply_batch(later, WALL_T0)
        slices = split_batch(later, 3)
        for piece in slices:
            sliced.apply_batch(piece, WALL_T0)
        assert [len(piece.entries) for piece in slices] == [3, 3, 1]
        assert [piece.removed for piece in slices] == [frozenset({"gone"}), frozenset(), frozenset()]
        assert sum(piece.messages for piece in slices) == later.messages
        assert sliced.node_ids() == whole.node_ids()
        assert [sliced.node(n).status for n in sliced.node_ids()] == [whole.node(n).status for n in whole.node_ids()]  # type: ignore[union-attr]

    def test_a_snapshot_is_never_cut(self) -> None:
        """A snapshot is the whole fleet (rows missing from it go), so it stays one batch however big."""
        batch = batch_of(snapshot(*(f"n-{index}" for index in range(10))))
        assert split_batch(batch, 3) == [batch]
