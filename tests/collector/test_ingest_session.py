"""IngestSession, the pure ingest state machine, against a real NodeCache: no sockets, a clock passed in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.cache import NodeCache
from collector.ingest_session import (
    CachePort,
    Close,
    Drop,
    IngestSession,
    SendFrame,
    WakeAt,
    ack_frame,
)
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.errors import CloseCode
from shared.messages import Ack, Error, Hello
from tests.support.messages import WALL_T0, heartbeat, hello

T0 = 1000.0
# Frames a fuzzer would rarely build by chance: the ones that move the conversation forward.
VALID = (encode(hello()), encode(heartbeat(1)), encode(heartbeat(2)), encode(hello(ack_every=3)))


def new_session(
    cache: NodeCache | None = None, conn: int = 1, *, hello_timeout_s: float = 10.0, ack_interval_s: float = 5.0
) -> IngestSession:
    """A session on connection ``conn`` of ``cache``, upgraded at T0."""
    port = CachePort(cache if cache is not None else NodeCache(), conn, lambda: WALL_T0)
    return IngestSession(port, now=T0, hello_timeout_s=hello_timeout_s, ack_interval_s=ack_interval_s)


def paced(ack_every: int | None, interval_s: float = 1.0) -> Hello:
    """A hello asking for an ack every ``ack_every`` heartbeats."""
    return hello(ack_every=ack_every, interval_s=interval_s)


def acks(actions: tuple[object, ...]) -> list[int]:
    """The seqs acked by ``actions``."""
    seqs = []
    for action in actions:
        if isinstance(action, SendFrame):
            message = decode(action.data, COLLECTOR_LIMITS)
            if isinstance(message, Ack):
                seqs.append(message.seq)
    return seqs


def refusal(actions: tuple[object, ...]) -> tuple[str, int]:
    """The Error reason and close code of a refusal: an Error frame, then a Close."""
    assert len(actions) == 2, actions
    send, close = actions
    assert isinstance(send, SendFrame)
    assert isinstance(close, Close)
    error = decode(send.data, COLLECTOR_LIMITS)
    assert isinstance(error, Error)
    assert error.reason == close.reason
    return close.reason, close.code


class TestHandshake:
    def test_start_arms_the_hello_deadline(self) -> None:
        """Right after the upgrade the shell is told to wake the session at the hello deadline."""
        assert new_session(hello_timeout_s=10.0).start() == (WakeAt(T0 + 10.0),)

    def test_hello_is_acked_with_the_seq_held(self) -> None:
        """A first hello is acked at once with 0: the collector holds nothing for this instance yet."""
        session = new_session()
        assert session.receive_frame(encode(hello()), T0 + 0.1) == (SendFrame(ack_frame(0)),)

    def test_a_silent_peer_is_refused_at_the_hello_deadline(self) -> None:
        """No hello within the timeout: an error frame, then 1008 hello_timeout."""
        session = new_session(hello_timeout_s=10.0)
        assert session.tick(T0 + 5.0) == (WakeAt(T0 + 10.0),)
        assert refusal(session.tick(T0 + 10.0)) == ("hello_timeout", CloseCode.POLICY_VIOLATION)
        assert session.receive_frame(encode(hello()), T0 + 11.0) == ()

    def test_a_hello_in_time_disarms_the_deadline(self) -> None:
        """Once the hello is in, the hello deadline's wake-up does nothing."""
        session = new_session()
        session.receive_frame(encode(hello()), T0 + 1.0)
        assert session.tick(T0 + 10.0) == ()

    def test_heartbeats_may_follow_the_hello_before_its_ack(self) -> None:
        """An agent need not wait for the hello's ack: a heartbeat right behind it is applied."""
        cache = NodeCache()
        session = new_session(cache)
        session.receive_frame(encode(hello()), T0)
        assert acks(session.receive_frame(encode(heartbeat(1)), T0)) == [1]
        record = cache.get("node-a")
        assert record is not None
        assert record.last_seq == 1


@pytest.mark.parametrize(
    ("first", "second", "reason", "code"),
    [
        (None, "text", "text_frame", CloseCode.UNSUPPORTED_DATA),
        (None, b"\xc1", "malformed_msgpack", CloseCode.POLICY_VIOLATION),
        (None, "heartbeat", "unexpected_message", CloseCode.POLICY_VIOLATION),
        ("hello", "hello", "unexpected_message", CloseCode.POLICY_VIOLATION),
        ("hello", "ack", "unexpected_message", CloseCode.POLICY_VIOLATION),
        ("hello", "text", "text_frame", CloseCode.UNSUPPORTED_DATA),
        ("hello", b"\x80" * 2, "trailing_bytes", CloseCode.POLICY_VIOLATION),
        ("hello", b"\x00" * 70_000, "frame_too_large", CloseCode.MESSAGE_TOO_BIG),
    ],
)
def test_bad_frames_are_refused_with_their_code(first: str | None, second: object, reason: str, code: int) -> None:
    """Each protocol break gets an error frame with its reason, then its close code."""
    session = new_session()
    if first == "hello":
        session.receive_frame(encode(hello()), T0)
    frames: dict[object, bytes | str] = {
        "text": '{"type": "hello"}',
        "heartbeat": encode(heartbeat(1)),
        "hello": encode(hello()),
        "ack": encode(Ack(seq=1)),
    }
    data = frames.get(second, second) if isinstance(second, str) else second
    assert isinstance(data, bytes | str)
    assert refusal(session.receive_frame(data, T0 + 1.0)) == (reason, code)


class TestCacheOutcomes:
    def test_a_different_instance_on_a_held_node_gets_4409(self) -> None:
        """A second agent instance claiming a connected node id is refused with duplicate_node."""
        cache = NodeCache()
        new_session(cache, 1).receive_frame(encode(hello(instance="a")), T0)
        other = new_session(cache, 2)
        assert refusal(other.receive_frame(encode(hello(instance="b")), T0)) == (
            "duplicate_node",
            CloseCode.DUPLICATE_NODE,
        )

    def test_a_full_cache_gets_4503(self) -> None:
        """A new node past max_nodes is refused with capacity_reached."""
        cache = NodeCache(max_nodes=1)
        new_session(cache, 1).receive_frame(encode(hello("n1")), T0)
        assert refusal(new_session(cache, 2).receive_frame(encode(hello("n2")), T0)) == (
            "capacity_reached",
            CloseCode.CAPACITY_REACHED,
        )

    def test_a_replaced_connection_is_dropped_without_a_close_frame(self) -> None:
        """The same instance reconnecting takes the node; the old session's next frame drops it (1006)."""
        cache = NodeCache()
        old = new_session(cache, 1)
        old.receive_frame(encode(hello()), T0)
        new = new_session(cache, 2)
        assert acks(new.receive_frame(encode(hello()), T0 + 1)) == [0]
        actions = old.receive_frame(encode(heartbeat(1)), T0 + 1)
        assert len(actions) == 1
        assert isinstance(actions[0], Drop)

    def test_a_clean_close_makes_the_node_offline(self) -> None:
        """Close 1000 from the agent: the node is offline at once, reason agent_closed."""
        cache = NodeCache()
        session = new_session(cache)
        session.receive_frame(encode(hello()), T0)
        session.receive_close(1000, T0 + 1)
        record = cache.get("node-a")
        assert record is not None
        assert (record.state, record.reason, record.conn) == ("offline", "agent_closed", None)

    def test_a_dropped_connection_leaves_the_node_to_the_clock(self) -> None:
        """A connection lost without a close frame only marks the node disconnected."""
        cache = NodeCache()
        session = new_session(cache)
        session.receive_frame(encode(hello()), T0)
        session.receive_close(None, T0 + 1)
        record = cache.get("node-a")
        assert record is not None
        assert (record.state, record.conn) == ("online", None)

    def test_an_internal_failure_closes_1011_and_disconnects_the_node(self) -> None:
        """fail(): an error frame, 1011 internal, and the cache no longer counts the node connected."""
        cache = NodeCache()
        session = new_session(cache)
        session.receive_frame(encode(hello()), T0)
        assert refusal(session.fail(T0 + 1)) == ("internal", CloseCode.INTERNAL_ERROR)
        record = cache.get("node-a")
        assert record is not None
        assert record.conn is None


class TestAckPacing:
    def test_without_ack_every_every_heartbeat_is_acked(self) -> None:
        """An agent that asked for nothing gets one ack per heartbeat and no timer."""
        session = new_session()
        session.receive_frame(encode(paced(None)), T0)
        for seq in range(1, 5):
            assert session.receive_frame(encode(heartbeat(seq)), T0 + 0.1 * seq) == (SendFrame(ack_frame(seq)),)

    def test_ack_every_counts_heartbeats(self) -> None:
        """With ack_every=3 and fast heartbeats, every third one is acked."""
        session = new_session()
        session.receive_frame(encode(paced(3, interval_s=0.05)), T0)
        acked = [seq for seq in range(1, 10) if acks(session.receive_frame(encode(heartbeat(seq)), T0 + 0.01 * seq))]
        assert acked == [3, 6, 9]

    def test_one_heartbeat_then_silence_is_acked_by_the_timer(self) -> None:
        """A single heartbeat followed by silence is acked ack_interval_s later, by the wake-up alone."""
        session = new_session()
        session.receive_frame(encode(paced(100)), T0)
        assert session.receive_frame(encode(heartbeat(1)), T0 + 1.0) == (WakeAt(T0 + 6.0),)
        assert session.tick(T0 + 5.0) == (WakeAt(T0 + 6.0),)  # early: re-armed, nothing sent
        assert acks(session.tick(T0 + 6.0)) == [1]
        assert session.tick(T0 + 20.0) == ()

    def test_the_wake_up_is_armed_once_per_window(self) -> None:
        """Heartbeats inside an open ack window return no actions at all: no timer per frame."""
        session = new_session()
        session.receive_frame(encode(paced(100, interval_s=0.5)), T0)
        assert session.receive_frame(encode(heartbeat(1)), T0 + 0.5) == (WakeAt(T0 + 5.5),)
        for seq in range(2, 9):
            assert session.receive_frame(encode(heartbeat(seq)), T0 + 0.5 * seq) == ()

    @pytest.mark.parametrize("interval_s", [1.0, 3.0])
    def test_no_heartbeat_waits_longer_than_the_ack_interval(self, interval_s: float) -> None:
        """At any rate, every heartbeat is acked within ack_interval_s of its arrival (3 s beats: 6.2 s before)."""
        session = new_session()
        session.receive_frame(encode(paced(1800, interval_s=interval_s)), T0)
        wake: float | None = None
        unacked_since: float | None = None
        for seq in range(1, 30):
            now = T0 + interval_s * seq
            if wake is not None and wake <= now:
                if acks(session.tick(wake)):
                    assert unacked_since is not None
                    assert wake - unacked_since <= 5.0
                    unacked_since = None
                wake = None
            actions = session.receive_frame(encode(heartbeat(seq)), now)
            unacked_since = unacked_since if unacked_since is not None else now
            if acks(actions):
                assert now - unacked_since <= 5.0
                unacked_since = None
            wake = next((a.at for a in actions if isinstance(a, WakeAt)), wake)

    def test_a_slow_agent_is_acked_every_time(self) -> None:
        """An agent sampling every 60 s is acked at each heartbeat, with no timer."""
        session = new_session()
        session.receive_frame(encode(paced(1800, interval_s=60.0)), T0)
        for seq in range(1, 4):
            assert session.receive_frame(encode(heartbeat(seq)), T0 + 60.0 * seq) == (SendFrame(ack_frame(seq)),)

    def test_a_duplicate_is_acked_with_the_seq_held(self) -> None:
        """A replayed heartbeat is counted and the ack still covers the highest seq held."""
        session = new_session()
        session.receive_frame(encode(hello()), T0)
        session.receive_frame(encode(heartbeat(5)), T0 + 1)
        assert acks(session.receive_frame(encode(heartbeat(3)), T0 + 2)) == [5]


class TestAnyInput:
    @settings(max_examples=200, deadline=None)
    @given(
        frames=st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=50), st.sampled_from(VALID)), max_size=8),
        ticks=st.lists(st.floats(min_value=0.0, max_value=30.0), max_size=4),
    )
    def test_nothing_but_actions_come_out(self, frames: list[bytes | str], ticks: list[float]) -> None:
        """Whatever a peer sends, the session answers with actions; no exception escapes, and it ends at most once."""
        session = new_session()
        closes = 0
        now = T0
        for data in frames:
            now += 0.5
            for action in session.receive_frame(data, now):
                assert isinstance(action, SendFrame | Close | Drop | WakeAt)
                closes += isinstance(action, Close | Drop)
        for at in ticks:
            closes += sum(isinstance(a, Close | Drop) for a in session.tick(now + at))
        session.receive_close(None, now + 31.0)
        assert closes <= 1
