"""The agent's and the collector's sessions paired in memory over a real NodeCache: docs/protocol.md, 4.1 and 7."""

from __future__ import annotations

import msgpack
import pytest

from agent.session import FINAL_ACK_TIMEOUT_S, HELLO_ACK_TIMEOUT_S
from collector.cache import NodeCache
from collector.ingest_session import ACK_INTERVAL_S, HELLO_TIMEOUT_S, Drop
from shared.codec import encode
from shared.retry import (
    ABNORMAL_CLOSURE,
    CAPACITY_DELAY_S,
    DUPLICATE_NODE_DELAY_S,
    LONG_DELAY_S,
    RETRY_BY_CLOSE_CODE,
    RetryAction,
    retry_for_close,
)
from tests.support.messages import heartbeat

from .pair import Pair


def pair(**settings: object) -> Pair:
    return Pair(NodeCache(), **settings)  # type: ignore[arg-type]


class TestHandshakeAndReplay:
    def test_samples_taken_before_connecting_are_replayed_in_order(self) -> None:
        """Five samples taken while offline reach the collector's history as 1..5 once the hello is acked."""
        p = pair()
        for _ in range(5):
            p.sample()
        p.connect()
        assert p.history() == [1, 2, 3, 4, 5]
        assert p.held() == []  # every heartbeat was acked (ack_every 1)
        record = p.cache.get(p.node_id)
        assert record is not None
        assert record.state == "online"
        assert record.missing_samples == 0

    def test_a_reconnect_replays_only_what_the_collector_does_not_hold(self) -> None:
        """After a drop, the hello's ack(N) trims the backlog and only N+1.. is sent: no duplicate, no gap."""
        p = pair(ack_every=100)  # nothing acked before the drop: the next hello's ack must cover it
        p.connect()
        for _ in range(4):
            p.sample()
        assert p.held() == [1, 2, 3, 4]
        p.lose_connection()
        for _ in range(3):
            p.sample()
        p.connect()
        assert p.held() == [5, 6, 7]
        assert p.history() == [1, 2, 3, 4, 5, 6, 7]
        record = p.cache.get(p.node_id)
        assert record is not None
        assert record.duplicates == 0

    def test_a_collector_that_lost_everything_gets_the_whole_backlog(self) -> None:
        """A restarted collector (a new cache) acks the hello with 0, and every unacked sample is replayed."""
        p = pair(ack_every=100)
        p.connect()
        for _ in range(3):
            p.sample()
        p.lose_connection()
        p.cache = NodeCache()
        p.connect()
        assert p.history() == [1, 2, 3]

    def test_overflow_while_offline_shows_as_dropped_samples(self) -> None:
        """With a 3-sample backlog, 5 samples offline drop 2, and the hello reports them."""
        p = pair(backlog_samples=3)
        for _ in range(5):
            p.sample()
        p.connect()
        record = p.cache.get(p.node_id)
        assert record is not None
        assert record.dropped_samples == 2
        assert p.history() == [3, 4, 5]


class TestAckPacing:
    def test_acks_come_every_ack_every_heartbeats(self) -> None:
        """With ack_every 3 the backlog holds at most 3 unacked samples, then an ack clears them."""
        p = pair(ack_every=3)
        p.connect()
        p.sample()
        p.sample()
        assert p.held() == [1, 2]
        p.sample()
        assert p.held() == []

    def test_a_lone_heartbeat_is_acked_by_the_timer(self) -> None:
        """One heartbeat followed by silence is acked ACK_INTERVAL_S later, by the collector's timer alone."""
        p = pair(ack_every=100)
        p.connect()
        p.sample()
        p.advance(ACK_INTERVAL_S - 0.01)
        assert p.held() == [1]
        p.advance(0.01)
        assert p.held() == []

    def test_the_timer_is_armed_per_window_not_per_heartbeat(self) -> None:
        """Heartbeats every second, then silence: the ack comes 5 s after the first unacked one, not after the last."""
        p = pair(ack_every=100)
        p.connect()
        p.sample()
        for _ in range(3):
            p.advance(1.0)
            p.sample()
        p.advance(ACK_INTERVAL_S - 3.0 - 0.01)
        assert p.held() == [1, 2, 3, 4]
        p.advance(0.01)  # 5 s after heartbeat 1
        assert p.held() == []

    def test_stop_waits_briefly_for_the_last_ack_then_closes_1000(self) -> None:
        """At shutdown the agent waits at most FINAL_ACK_TIMEOUT_S for an ack, then closes 1000: offline at once."""
        p = pair(ack_every=100)
        p.connect()
        p.sample()
        p.stop()
        assert p.outcomes == []
        p.advance(FINAL_ACK_TIMEOUT_S)
        assert p.outcomes[-1].close_code == 1000
        record = p.cache.get(p.node_id)
        assert record is not None
        assert (record.state, record.reason) == ("offline", "agent_closed")

    def test_stop_with_everything_acked_closes_at_once(self) -> None:
        """With ack_every 1 the last heartbeat is already acked: the close goes out without waiting."""
        p = pair()
        p.connect()
        p.sample()
        p.stop()
        assert p.outcomes[-1].reason == "stopped"


class TestDeadlines:
    def test_the_agent_leaves_a_collector_that_never_acks_its_hello(self) -> None:
        """No ack within HELLO_ACK_TIMEOUT_S: the agent closes 1008 hello_ack_timeout, normal backoff, backlog kept."""
        p = pair()
        p.sample()
        p.connect_unanswered()
        p.advance(HELLO_ACK_TIMEOUT_S - 0.01)
        assert p.outcomes == []
        p.advance(0.01)
        assert p.outcomes[-1].reason == "collector did not ack the hello in time"
        assert seen_by_agent(p) == (1008, False, 0.0)
        assert p.held() == [1]

    def test_the_collector_closes_an_agent_that_sends_no_hello(self) -> None:
        """A connection with no hello for HELLO_TIMEOUT_S is closed 1008 hello_timeout by the collector."""
        p = pair()
        p.connect_silent()
        p.advance(HELLO_TIMEOUT_S - 0.01)
        assert p.collector_closes == []
        p.advance(0.01)
        assert [(c.code, c.reason) for c in p.collector_closes] == [(1008, "hello_timeout")]


def seen_by_agent(p: Pair) -> tuple[int | None, bool, float]:
    """The last outcome's close code, long backoff, and least delay."""
    outcome = p.outcomes[-1]
    return outcome.close_code, outcome.refused, outcome.min_delay_s


class TestCloseCodes:
    """docs/protocol.md section 7, one row at a time: what the collector sends and what the agent then does."""

    def test_1000_agent_goodbye_marks_the_node_offline_at_once(self) -> None:
        """1000 from the agent: the node goes offline with reason agent_closed, no waiting for the clock."""
        p = pair()
        p.connect()
        p.sample()
        p.stop()
        record = p.cache.get(p.node_id)
        assert record is not None
        assert (record.state, record.reason) == ("offline", "agent_closed")
        assert p.outcomes[-1].close_code == 1000

    def test_replaced_connection_is_dropped_and_the_agent_reconnects_normally(self) -> None:
        """A second connection of the same instance takes the node; the old one is dropped (1006), then backoff."""
        p = pair()
        p.connect()
        old = p.ingest
        p.agent.connection_lost("half-open", p.clock())  # the agent gave up on the old socket; the collector did not
        p.connect()
        p.sample()
        record = p.cache.get(p.node_id)
        assert record is not None
        assert record.conn == 2
        [drop] = old.receive_frame(encode(heartbeat(99)), p.clock())
        assert isinstance(drop, Drop)
        policy = retry_for_close(ABNORMAL_CLOSURE)
        assert policy.action is RetryAction.BACKOFF
        assert policy.min_delay_s == 0.0

    def test_1001_collector_shutdown_is_a_normal_reconnect_keeping_the_backlog(self) -> None:
        """1001 from the collector's shell: reconnect with the normal backoff, unacked samples kept for the next one."""
        p = pair(ack_every=100)
        p.connect()
        p.sample()
        p.collector_sends(("close", 1001, "collector shutting down"))
        assert seen_by_agent(p) == (1001, False, 0.0)
        assert p.held() == [1]

    def test_1003_a_text_frame_is_refused_and_the_agent_backs_off_long(self) -> None:
        """A text frame on ingest gets error text_frame and 1003; the agent logs the reason and waits a minute."""
        p = pair()
        p.connect()
        p.agent_sends(("text", "hello?", ""))
        assert [(c.code, c.reason) for c in p.collector_closes] == [(1003, "text_frame")]
        assert seen_by_agent(p) == (1003, True, LONG_DELAY_S)
        assert any("reported 'text_frame'" in line for line in p.agent_log)

    @pytest.mark.parametrize(
        ("frame", "code", "reason"),
        [
            (b"\xc1", 1008, "malformed_msgpack"),
            (msgpack.packb({"type": "heartbeat", "seq": 0, "sampled_at": 1.0}), 1008, "schema"),
            (b"\x00" * (64 * 1024 + 1), 1009, "frame_too_large"),
        ],
    )
    def test_1008_and_1009_a_bad_frame_is_refused_and_the_agent_backs_off_long(
        self, frame: bytes, code: int, reason: str
    ) -> None:
        """A frame that breaks the spec or its size limit gets an error and 1008/1009; the agent waits a minute."""
        p = pair()
        p.connect()
        p.sample(frame)
        assert [(c.code, c.reason) for c in p.collector_closes] == [(code, reason)]
        assert seen_by_agent(p) == (code, True, LONG_DELAY_S)
        assert p.held() == [1]  # the bad frame is still held: a bug, not data loss

    def test_1008_an_unsupported_protocol_version(self) -> None:
        """A hello with a protocol version the collector does not speak gets unsupported_version and 1008."""
        p = pair(hello_overrides={"protocol_version": 2})
        p.connect()
        assert [(c.code, c.reason) for c in p.collector_closes] == [(1008, "unsupported_version")]
        assert seen_by_agent(p) == (1008, True, LONG_DELAY_S)

    def test_1011_a_collector_bug_is_a_normal_reconnect(self) -> None:
        """A fault in the collector's shell closes that one connection 1011; the agent reconnects with backoff."""
        p = pair()
        p.connect()
        p.collector_does(p.ingest.fail(p.clock()))
        assert [(c.code, c.reason) for c in p.collector_closes] == [(1011, "internal")]
        assert seen_by_agent(p) == (1011, False, 0.0)

    def test_4409_another_instance_holds_the_node(self) -> None:
        """A second instance with the same node id gets duplicate_node and 4409; it waits at least 5 s."""
        first = pair(instance="inst-1")
        first.connect()
        first.sample()
        second = Pair(first.cache, instance="inst-2")
        second.connect()
        assert [(c.code, c.reason) for c in second.collector_closes] == [(4409, "duplicate_node")]
        assert seen_by_agent(second) == (4409, False, DUPLICATE_NODE_DELAY_S)
        record = first.cache.get(first.node_id)
        assert record is not None
        assert record.instance_id == "inst-1"

    def test_4503_the_collector_is_full(self) -> None:
        """Past max_nodes a new node gets capacity_reached and 4503; the agent is busy-waiting at least 15 s."""
        cache = NodeCache(max_nodes=1)
        pair_in = Pair(cache, node_id="in")
        pair_in.connect()
        p = Pair(cache, node_id="out")
        p.sample()
        p.connect()
        assert [(c.code, c.reason) for c in p.collector_closes] == [(4503, "capacity_reached")]
        assert seen_by_agent(p) == (4503, False, CAPACITY_DELAY_S)
        assert p.outcomes[-1].busy
        assert p.held() == [1]

    def test_4429_is_a_viewer_code_an_agent_still_follows_the_table(self) -> None:
        """4429 is sent to viewers only; an agent that gets it anyway reconnects after the table's second."""
        p = pair()
        p.connect()
        p.collector_sends(("close", 4429, "subscriber_too_slow"))
        assert seen_by_agent(p) == (4429, False, 1.0)

    @pytest.mark.parametrize(("code", "reason"), [(4403, "node_key_mismatch"), (4430, "rate_exceeded")])
    def test_trust_refusals_follow_the_table(self, code: int, reason: str) -> None:
        """A node-key refusal (4403) or a rate refusal (4430) makes the agent wait what shared.retry says for it."""
        p = pair()
        p.connect()
        p.collector_sends(("close", code, reason))
        policy = retry_for_close(code)
        assert seen_by_agent(p) == (code, policy.action is RetryAction.BACKOFF_LONG, policy.min_delay_s)

    def test_every_row_of_the_table_is_covered_here(self) -> None:
        """Each close code of shared.retry has a test above (1006 as the replaced connection)."""
        covered = {1000, 1001, 1003, 1008, 1009, 1011, 4403, 4409, 4429, 4430, 4503, ABNORMAL_CLOSURE}
        assert set(RETRY_BY_CLOSE_CODE) == covered
