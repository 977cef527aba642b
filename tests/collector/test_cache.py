"""Unit tests of NodeCache: hello/heartbeat/close, dedup, replay order, liveness with a fake clock."""

from __future__ import annotations

import pytest

from collector import wire
from collector.cache import ChangeKind, NodeCache
from collector.fanout import PendingUpdates
from shared.codec import encode
from shared.errors import CloseCode, ErrorReason, ProtocolError
from tests.support.messages import WALL_T0, heartbeat, hello

T0 = 1000.0  # monotonic


def make_cache(**kwargs: float) -> NodeCache:
    """A cache with short, readable numbers."""
    return NodeCache(**kwargs)  # type: ignore[arg-type]


class TestHello:
    def test_first_hello_creates_online_node_and_acks_zero(self) -> None:
        """A new node is online at once, with its facts, and the ack is 0."""
        cache = NodeCache()
        result = cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        assert result.ack_seq == 0
        assert result.changes[0].kind == ChangeKind.STATUS | ChangeKind.FACTS
        status = wire.status(cache.get("node-a"))  # type: ignore[arg-type]
        assert (status.state, status.reason, status.connected) == ("online", "hello", True)

    def test_same_instance_reconnect_acks_highest_seq_and_replaces_connection(self) -> None:
        """The same agent instance gets Ack(highest seq held) and its old connection is named for closing."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        for seq in (1, 2, 3):
            cache.heartbeat("node-a", 1, heartbeat(seq), T0 + seq, WALL_T0 + seq)
        result = cache.hello(hello(), conn=2, now=T0 + 5, wall=WALL_T0 + 5)
        assert (result.ack_seq, result.replaced_conn) == (3, 1)
        assert cache.heartbeat("node-a", 1, heartbeat(4), T0 + 6, WALL_T0 + 6).current is False

    def test_other_instance_on_live_node_is_refused_4409(self) -> None:
        """A different instance claiming a connected node id gets duplicate_node, close code 4409."""
        cache = NodeCache()
        cache.hello(hello(instance="a"), conn=1, now=T0, wall=WALL_T0)
        with pytest.raises(ProtocolError) as info:
            cache.hello(hello(instance="b"), conn=2, now=T0, wall=WALL_T0)
        assert info.value.reason is ErrorReason.DUPLICATE_NODE
        assert info.value.close_code == CloseCode.DUPLICATE_NODE

    def test_other_instance_may_take_over_an_offline_node(self) -> None:
        """After a clean close, a new instance takes the node id and counts seq from scratch."""
        cache = NodeCache()
        cache.hello(hello(instance="a"), conn=1, now=T0, wall=WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(7), T0, WALL_T0)
        cache.close("node-a", 1, clean=True, now=T0 + 1, wall=WALL_T0 + 1)
        result = cache.hello(hello(instance="b"), conn=2, now=T0 + 2, wall=WALL_T0 + 2)
        assert result.ack_seq == 0
        assert cache.get("node-a").instance_id == "b"  # type: ignore[union-attr]

    def test_capacity_cap_refuses_new_nodes_4503(self) -> None:
        """Beyond max_nodes a new id is refused with capacity_reached; known ids still get in."""
        cache = NodeCache(max_nodes=1)
        cache.hello(hello("n1"), conn=1, now=T0, wall=WALL_T0)
        with pytest.raises(ProtocolError) as info:
            cache.hello(hello("n2"), conn=2, now=T0, wall=WALL_T0)
        assert info.value.close_code == CloseCode.CAPACITY_REACHED
        assert cache.hello(hello("n1"), conn=3, now=T0, wall=WALL_T0).ack_seq == 0

    def test_clock_skew_from_hello(self) -> None:
        """An agent 2 s ahead shows clock_skew_s = 2."""
        cache = NodeCache()
        cache.hello(hello(sent_at=WALL_T0 + 2.0), conn=1, now=T0, wall=WALL_T0)
        assert wire.status(cache.get("node-a")).clock_skew_s == pytest.approx(2.0)  # type: ignore[arg-type]


class TestHeartbeat:
    def test_duplicates_are_ignored_but_acked(self) -> None:
        """A seq at or below the last one changes nothing and is acked with the last seq."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(1, cpu=10.0), T0, WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(2, cpu=20.0), T0, WALL_T0)
        result = cache.heartbeat("node-a", 1, heartbeat(1, cpu=99.0), T0, WALL_T0)
        node = cache.get("node-a")
        assert node is not None
        assert (result.duplicate, result.ack_seq) == (True, 2)
        assert node.last_sample is not None
        assert node.last_sample.cpu_percent == 20.0
        assert node.history.to_history().seq == [1, 2]

    def test_gap_counts_missing_samples(self) -> None:
        """Seq 1 then 5 means 3 samples the collector will never have."""
        cache = NodeCache()
        cache.hello(hello(dropped=3), conn=1, now=T0, wall=WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(1), T0, WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(5), T0, WALL_T0)
        status = wire.status(cache.get("node-a"))  # type: ignore[arg-type]
        assert (status.missing_samples, status.dropped_samples, status.last_seq) == (3, 3, 5)

    def test_a_new_instance_sample_is_the_latest_even_if_stamped_earlier(self) -> None:
        """The latest sample is the newest by seq of the current instance (issue 13), history is by arrival."""
        cache = NodeCache()
        cache.hello(hello(instance="a"), conn=1, now=T0, wall=WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(1, sampled_at=WALL_T0 + 100, cpu=1.0), T0, WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(2, sampled_at=WALL_T0 + 200, cpu=2.0), T0, WALL_T0)
        cache.close("node-a", 1, clean=True, now=T0, wall=WALL_T0)
        cache.hello(hello(instance="b"), conn=2, now=T0, wall=WALL_T0)
        result = cache.heartbeat("node-a", 2, heartbeat(1, sampled_at=WALL_T0 + 150, cpu=9.0), T0, WALL_T0)
        node = cache.get("node-a")
        assert node is not None
        assert node.last_sample is not None
        assert node.last_sample.cpu_percent == 9.0
        assert result.changes[0].kind & ChangeKind.SAMPLE
        assert node.history.to_history().cpu_percent == [1.0, 2.0, 9.0]

    def test_latest_sample_is_kept_as_its_frame_and_read_back_whole(self) -> None:
        """With the frame at hand the cache keeps only bytes (no model for the GC to scan), and reads back the same."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        first, newer, replayed = heartbeat(1, cpu=11.0), heartbeat(3, cpu=33.0), heartbeat(2, cpu=22.0)
        for sample in (first, newer, replayed):
            cache.heartbeat("node-a", 1, sample, T0, WALL_T0, frame=encode(sample))
        node = cache.get("node-a")
        assert node is not None
        assert node.last_sample_model is None
        assert node.last_sample_frame == encode(newer)
        assert node.last_sample == newer  # the replayed, older seq 2 did not replace it

    def test_skew_ignores_replayed_samples(self) -> None:
        """Old replayed samples do not make the clock look minutes behind."""
        cache = NodeCache()
        cache.hello(hello(sent_at=WALL_T0 + 0.5), conn=1, now=T0, wall=WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(1, sampled_at=WALL_T0 - 300), T0, WALL_T0)
        assert wire.status(cache.get("node-a")).clock_skew_s == pytest.approx(0.5)  # type: ignore[arg-type]


class TestLiveness:
    def test_stale_after_3_intervals_offline_after_10(self) -> None:
        """Silence turns a node stale at 3 intervals and offline at 10, stamped when each was due."""
        cache = NodeCache()
        cache.hello(hello(interval_s=1.0), conn=1, now=T0, wall=WALL_T0)
        assert cache.next_due() == T0 + 3
        assert cache.expire(T0 + 2.9, WALL_T0 + 2.9).changes == []
        changes = cache.expire(T0 + 3.5, WALL_T0 + 3.5).changes
        status = wire.status(cache.get("node-a"))  # type: ignore[arg-type]
        assert [c.node_id for c in changes] == ["node-a"]
        assert (status.state, status.reason, status.state_since_at) == ("stale", "no_heartbeat", WALL_T0 + 3)
        assert cache.next_due() == T0 + 10
        cache.expire(T0 + 10, WALL_T0 + 10)
        assert cache.get("node-a").state == "offline"  # type: ignore[union-attr]
        assert cache.counts() == {"online": 0, "stale": 0, "offline": 1}

    def test_late_expire_applies_both_transitions_with_due_times(self) -> None:
        """Waking up late still ends offline, stamped at the 10-interval mark."""
        cache = NodeCache()
        cache.hello(hello(interval_s=2.0), conn=1, now=T0, wall=WALL_T0)
        cache.expire(T0 + 60, WALL_T0 + 60)
        status = wire.status(cache.get("node-a"))  # type: ignore[arg-type]
        assert (status.state, status.state_since_at) == ("offline", WALL_T0 + 20)

    def test_heartbeats_keep_node_online_without_extra_transitions(self) -> None:
        """A node that keeps talking stays online however often expire runs."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        for seq in range(1, 30):
            cache.heartbeat("node-a", 1, heartbeat(seq), T0 + seq, WALL_T0 + seq)
            assert cache.expire(T0 + seq + 0.5, WALL_T0).changes == []
        assert cache.get("node-a").state == "online"  # type: ignore[union-attr]
        due = cache.next_due()
        # next_due may be early (heartbeats do not touch the heap), never late; waking early re-arms it.
        assert due is not None
        assert due <= T0 + 29 + 3
        assert cache.expire(due, WALL_T0).changes == []
        assert cache.next_due() == T0 + 29 + 3

    def test_heartbeat_after_stale_brings_node_back_online(self) -> None:
        """A stale node that speaks again is online, with reason heartbeat_resumed."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        cache.expire(T0 + 4, WALL_T0 + 4)
        cache.heartbeat("node-a", 1, heartbeat(1), T0 + 5, WALL_T0 + 5)
        status = wire.status(cache.get("node-a"))  # type: ignore[arg-type]
        assert (status.state, status.reason, status.state_since_at) == ("online", "heartbeat_resumed", WALL_T0 + 5)

    def test_clean_close_is_offline_at_once(self) -> None:
        """A clean close (1000) makes the node offline immediately with reason agent_closed."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        cache.close("node-a", 1, clean=True, now=T0 + 1, wall=WALL_T0 + 1)
        status = wire.status(cache.get("node-a"))  # type: ignore[arg-type]
        assert (status.state, status.reason, status.connected) == ("offline", "agent_closed", False)

    def test_lost_connection_waits_for_timers(self) -> None:
        """A dropped connection is not a verdict: the node stays online until 3 intervals pass."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        cache.close("node-a", 1, clean=False, now=T0 + 1, wall=WALL_T0 + 1)
        assert cache.get("node-a").state == "online"  # type: ignore[union-attr]
        cache.expire(T0 + 3, WALL_T0 + 3)
        assert cache.get("node-a").state == "stale"  # type: ignore[union-attr]

    def test_offline_node_is_forgotten_after_forget_after(self) -> None:
        """An offline, disconnected node is removed forget_after_s after it went offline."""
        cache = NodeCache(forget_after_s=100.0)
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        cache.close("node-a", 1, clean=True, now=T0, wall=WALL_T0)
        assert cache.expire(T0 + 99, WALL_T0).changes == []
        changes = cache.expire(T0 + 100, WALL_T0).changes
        assert [(c.node_id, c.kind) for c in changes] == [("node-a", ChangeKind.REMOVED)]
        assert "node-a" not in cache
        assert cache.next_due() is None

    def test_connected_offline_node_is_not_forgotten(self) -> None:
        """A hung agent whose socket is still open stays listed."""
        cache = NodeCache(forget_after_s=5.0)
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        cache.expire(T0 + 100, WALL_T0)
        assert "node-a" in cache

    def test_many_nodes_heap_stays_small(self) -> None:
        """Thousands of heartbeats do not grow the deadline heap: one live entry per node."""
        cache = NodeCache()
        for i in range(50):
            cache.hello(hello(f"n{i}"), conn=i, now=T0, wall=WALL_T0)
        for seq in range(1, 100):
            for i in range(50):
                cache.heartbeat(f"n{i}", i, heartbeat(seq), T0 + seq, WALL_T0)
            cache.expire(T0 + seq, WALL_T0)
        assert len(cache._heap) <= 100
        assert cache.counts()["online"] == 50


class TestSnapshotAndPending:
    def test_snapshot_has_facts_sample_and_bounded_history(self) -> None:
        """The snapshot carries every node with at most N history points."""
        cache = NodeCache()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        for seq in range(1, 80):
            cache.heartbeat("node-a", 1, heartbeat(seq), T0, WALL_T0)
        snap = wire.snapshot(cache, WALL_T0, 60)
        entry = snap.nodes[0]
        assert entry.facts is not None
        assert entry.last_sample is not None
        assert entry.history is not None
        assert len(entry.history.seq) == 60
        assert entry.history.seq[-1] == 79

    def test_pending_updates_coalesce_latest_state_per_node(self) -> None:
        """Many changes to one node between flushes become one entry with the latest sample."""
        cache = NodeCache()
        pending = PendingUpdates()
        pending.add(cache.hello(hello(), conn=1, now=T0, wall=WALL_T0).changes)
        coalesced = 0
        for seq in range(1, 11):
            coalesced += pending.add(cache.heartbeat("node-a", 1, heartbeat(seq), T0, WALL_T0).changes)
        update = pending.take_update(cache, WALL_T0)
        assert update is not None
        assert coalesced == 10
        assert len(update.nodes) == 1
        assert update.nodes[0].facts is not None
        assert update.nodes[0].last_sample is not None
        assert update.nodes[0].last_sample.seq == 10
        assert pending.take_update(cache, WALL_T0) is None

    def test_pending_removed_node(self) -> None:
        """A forgotten node shows up in Update.removed, not in nodes."""
        cache = NodeCache(forget_after_s=1.0)
        pending = PendingUpdates()
        cache.hello(hello(), conn=1, now=T0, wall=WALL_T0)
        pending.add(cache.close("node-a", 1, clean=True, now=T0, wall=WALL_T0))
        pending.add(cache.expire(T0 + 2, WALL_T0).changes)
        update = pending.take_update(cache, WALL_T0)
        assert update is not None
        assert (update.nodes, update.removed) == ([], ["node-a"])
