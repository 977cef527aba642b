"""Contract points 4, 8 and 9 of issue 11: what seq, gaps and reasons mean, on the pure NodeCache."""

from __future__ import annotations

from collector import wire
from collector.cache import REASON_HEARTBEAT, REASON_HELLO, NodeCache
from tests.support.messages import WALL_T0, heartbeat, hello

T0 = 1000.0


def status_of(cache: NodeCache, node_id: str = "node-a") -> tuple[str, str | None, int, int, int]:
    """(state, reason, last_seq, missing_samples, dropped_samples) of a node."""
    record = cache.get(node_id)
    assert record is not None
    status = wire.status(record)
    return status.state, status.reason, status.last_seq, status.missing_samples, status.dropped_samples


class TestDurability:
    def test_point_4_a_fresh_collector_acks_a_known_instance_with_0(self) -> None:
        """Point 4: acks are in memory only; a new collector acks the same instance's hello with 0."""
        first = NodeCache()
        first.hello(hello(), 1, T0, WALL_T0)
        first.heartbeat("node-a", 1, heartbeat(7), T0 + 1, WALL_T0 + 1)
        restarted = NodeCache()
        assert restarted.hello(hello(), 1, T0 + 5, WALL_T0 + 5).ack_seq == 0

    def test_point_4_the_first_seq_seen_is_a_baseline(self) -> None:
        """Point 4: an instance first seen at seq 10 shows no missing samples; a later gap does count."""
        cache = NodeCache()
        cache.hello(hello(), 1, T0, WALL_T0)
        cache.heartbeat("node-a", 1, heartbeat(10), T0 + 1, WALL_T0 + 1)
        assert status_of(cache)[3] == 0
        cache.heartbeat("node-a", 1, heartbeat(13), T0 + 2, WALL_T0 + 2)
        assert status_of(cache)[3] == 2


class TestTakeOver:
    def test_point_8_a_new_instance_restarts_seq_and_gaps_but_keeps_history(self) -> None:
        """Point 8: on a take-over last_seq and missing_samples restart, dropped is the new hello's, history stays."""
        cache = NodeCache()
        cache.hello(hello(instance="old", dropped=4), 1, T0, WALL_T0)
        for seq in (1, 2, 5):
            cache.heartbeat("node-a", 1, heartbeat(seq), T0 + seq, WALL_T0 + seq)
        cache.close("node-a", 1, clean=True, now=T0 + 6, wall=WALL_T0 + 6)
        assert status_of(cache)[2:] == (5, 2, 4)
        cache.hello(hello(instance="new", dropped=1), 2, T0 + 7, WALL_T0 + 7)
        assert status_of(cache)[2:] == (0, 0, 1)
        cache.heartbeat("node-a", 2, heartbeat(1, sampled_at=WALL_T0 + 8), T0 + 8, WALL_T0 + 8)
        record = cache.get("node-a")
        assert record is not None
        assert record.history.to_history().seq == [1, 2, 5, 1]


class TestOnlineReasons:
    def test_point_9_a_reconnect_after_offline_is_online_by_hello(self) -> None:
        """Point 9: an offline node whose agent says hello again is online with reason hello."""
        cache = NodeCache()
        cache.hello(hello(), 1, T0, WALL_T0)
        cache.expire(T0 + 11, WALL_T0 + 11)
        assert status_of(cache)[0] == "offline"
        cache.hello(hello(), 2, T0 + 12, WALL_T0 + 12)
        assert status_of(cache)[:2] == ("online", REASON_HELLO)

    def test_point_9_heartbeats_on_the_same_connection_resume(self) -> None:
        """Point 9: a stale node whose open connection speaks again is online with reason heartbeat_resumed."""
        cache = NodeCache()
        cache.hello(hello(), 1, T0, WALL_T0)
        cache.expire(T0 + 4, WALL_T0 + 4)
        assert status_of(cache)[0] == "stale"
        cache.heartbeat("node-a", 1, heartbeat(1), T0 + 5, WALL_T0 + 5)
        assert status_of(cache)[:2] == ("online", REASON_HEARTBEAT)
