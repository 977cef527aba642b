"""Restart merging (``collector.store.service``): a restored node's ring and latest sample from the store.

Pure: cache records and store columns built in memory. The restart itself, against real
processes, is tests/faults/test_collector_killed.py and tests/collector/test_store_wiring.py.
"""

from __future__ import annotations

from collector.cache import NodeCache
from collector.store.codec import Columns
from collector.store.model import NodeRow, RawPoints
from collector.store.service import fill_ring, record_of
from collector.wire import pack
from tests.support.messages import WALL_T0, facts, heartbeat

VALUES = (10.0, 20.0, 0.5, 100.0, 200.0, 0.0, 30.0)


def stored(seqs: range, instance: str = "i1") -> RawPoints:
    """Points ``seqs`` of ``instance`` as the store returns them, one second apart."""
    return RawPoints(instance, Columns.from_values(list(seqs), [WALL_T0 + s for s in seqs], [VALUES] * len(seqs)))


def restored(last_seq: int, last_sample: bytes | None = None) -> tuple[NodeCache, NodeRow]:
    """A cache holding node n1 as the registry had it."""
    row = NodeRow(
        "n1", "i1", pack(facts().model_dump(mode="python", exclude_none=True)), 1.0, "online", WALL_T0,
        last_seq=last_seq, last_sample=last_sample,
    )  # fmt: skip
    cache = NodeCache()
    record = record_of(row, cache, now=1000.0, wall=WALL_T0 + 100)
    assert record is not None
    cache.adopt(record)
    return cache, row


class TestFillRing:
    def test_stored_points_go_before_what_arrived_since_the_start(self) -> None:
        """An agent that replayed before the window loaded keeps its points; the stored ones come first, once."""
        cache, _ = restored(last_seq=4)
        cache.get("n1").conn = 7  # type: ignore[union-attr]
        cache.heartbeat("n1", 7, heartbeat(5, sampled_at=WALL_T0 + 5), 1001.0, WALL_T0 + 101)
        cache.heartbeat("n1", 7, heartbeat(6, sampled_at=WALL_T0 + 6), 1002.0, WALL_T0 + 102)
        record = cache.get("n1")
        assert record is not None
        assert fill_ring(record, stored(range(1, 6)), restored_seq=4) is False  # a newer sample arrived
        assert record.history.to_history().seq == [1, 2, 3, 4, 5, 6]

    def test_the_newest_stored_point_becomes_the_latest_sample_after_a_kill(self) -> None:
        """The registry's last sample is older than the store's newest point: that point is shown, seq and all."""
        cache, _ = restored(last_seq=4, last_sample=pack({"type": "heartbeat", "seq": 1, "sampled_at": WALL_T0 + 1}))
        record = cache.get("n1")
        assert record is not None
        assert fill_ring(record, stored(range(1, 5)), restored_seq=4) is True
        sample = record.last_sample
        assert sample is not None
        assert (sample.seq, sample.cpu_percent, sample.load_avg) == (4, 10.0, None)
        assert record.history.to_history().seq == [1, 2, 3, 4]

    def test_points_of_another_instance_are_not_mixed_in(self) -> None:
        """A window of an older agent instance is left out of the current one's ring."""
        cache, _ = restored(last_seq=4)
        record = cache.get("n1")
        assert record is not None
        assert fill_ring(record, stored(range(1, 5), instance="old"), restored_seq=4) is False
        assert len(record.history) == 0
