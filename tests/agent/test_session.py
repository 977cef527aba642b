"""AgentSession, the agent's protocol rules with no I/O: feed events, check the actions it returns."""

from __future__ import annotations

import logging

import msgpack
import pytest

from agent.backlog import Backlog
from agent.backoff import Outcome, http_outcome
from agent.session import (
    FINAL_ACK_TIMEOUT_S,
    HELLO_ACK_TIMEOUT_S,
    LOG_EVERY_S,
    SEND_BATCH,
    UNSOLICITED_BURST,
    Action,
    AgentSession,
    Close,
    HelloAcked,
    Log,
    SendFrame,
    SendPong,
    SessionState,
    WakeAt,
)
from shared.retry import ABNORMAL_CLOSURE, CAPACITY_DELAY_S, RETRY_BY_CLOSE_CODE, RetryAction, retry_for_close
from tests.support.clock import FakeClock

PEER = "ws://collector.test/api/v1/ingest"


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj)
    return data


def ack(seq: int) -> bytes:
    return pack({"type": "ack", "seq": seq})


def error(reason: str, detail: str) -> bytes:
    return pack({"type": "error", "reason": reason, "detail": detail})


def frame(seq: int) -> bytes:
    return f"beat-{seq}".encode()


def sent(actions: list[Action]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, SendFrame)]


def only(actions: list[Action], kind: type) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def outcome_of(actions: list[Action]) -> Outcome:
    assert isinstance(actions[-1], Outcome), actions
    return actions[-1]


def lines(actions: list[Action]) -> list[str]:
    return [a.msg % a.args for a in actions if isinstance(a, Log)]


class Agent:
    """A session over a backlog the test fills, with a clock the test moves."""

    def __init__(self, samples: int = 0, max_samples: int = 1000) -> None:
        self.clock = FakeClock()
        self.backlog = Backlog(max_samples)
        self.seq = 0
        self.session = AgentSession(self.backlog, lambda dropped: b"hello:%d" % dropped, peer=PEER)
        for _ in range(samples):
            self.sample()

    def sample(self) -> list[Action]:
        self.seq += 1
        self.backlog.append(self.seq, frame(self.seq))
        return self.session.sample_added(self.clock()) if self.session.is_open else []

    def connect(self, held: int = 0) -> list[Action]:
        """Connect and have the hello acked with ``held``; return the ack's actions."""
        self.session.connected(self.clock())
        return self.session.frame_received(ack(held), self.clock())

    def live(self, samples: int = 3) -> None:
        """Connected, with ``samples`` sent and none acked."""
        self.connect()
        for _ in range(samples):
            self.sample()


class TestHandshake:
    def test_hello_first_with_the_dropped_count_and_a_deadline(self) -> None:
        """The first frame on a connection is the hello, carrying how many samples the backlog dropped."""
        agent = Agent(samples=5, max_samples=3)
        actions = agent.session.connected(agent.clock())
        assert actions == [SendFrame(b"hello:2"), WakeAt(agent.clock() + HELLO_ACK_TIMEOUT_S)]

    def test_ack_trims_to_the_held_seq_and_replays_the_rest_oldest_first(self) -> None:
        """The hello's ack(N) forgets 1..N and sends N+1.. in order, before any live frame."""
        agent = Agent()
        agent.live(samples=5)
        agent.session.connection_lost("connection lost", agent.clock())
        agent.session.connected(agent.clock())
        actions = agent.session.frame_received(ack(2), agent.clock())
        assert actions[0] == HelloAcked(2)
        assert sent(actions) == [frame(3), frame(4), frame(5)]
        assert len(agent.backlog) == 3
        assert lines(actions) == [f"connected to {PEER}; collector holds seq 2, 3 sample(s) to send"]
        assert agent.session.state is SessionState.LIVE
        assert not only(actions, WakeAt)  # no timer while live and idle

    def test_samples_wait_until_the_hello_is_acked(self) -> None:
        """A sample taken before the ack is not sent ahead of the replay; the deadline stays armed."""
        agent = Agent(samples=1)
        agent.session.connected(agent.clock())
        actions = agent.sample()
        assert actions == [WakeAt(agent.clock() + HELLO_ACK_TIMEOUT_S)]
        assert sent(agent.session.frame_received(ack(0), agent.clock())) == [frame(1), frame(2)]

    def test_a_long_replay_goes_in_batches(self) -> None:
        """A big backlog is replayed a batch at a time, each asking for an immediate tick, so a stop gets in."""
        agent = Agent(samples=SEND_BATCH * 2 + 5)
        first = agent.connect()
        assert len(sent(first)) == SEND_BATCH
        assert first[-1] == WakeAt(agent.clock())
        second = agent.session.tick(agent.clock())
        third = agent.session.tick(agent.clock())
        assert len(sent(second)) == SEND_BATCH
        assert sent(third) == [frame(n) for n in range(SEND_BATCH * 2 + 1, SEND_BATCH * 2 + 6)]
        assert not only(third, WakeAt)

    def test_unacked_hello_closes_1008_at_the_deadline(self) -> None:
        """A collector that never acks the hello is closed 1008 and retried with the normal backoff."""
        agent = Agent(samples=2)
        agent.session.connected(agent.clock())
        agent.clock.advance(HELLO_ACK_TIMEOUT_S - 0.1)
        assert agent.session.tick(agent.clock()) == [WakeAt(agent.clock() + 0.1)]
        agent.clock.advance(0.1)
        actions = agent.session.tick(agent.clock())
        assert actions[0] == Close(1008, "hello_ack_timeout")
        outcome = outcome_of(actions)
        assert outcome.reason == "collector did not ack the hello in time"
        assert not outcome.refused
        assert not outcome.was_connected
        assert len(agent.backlog) == 2


class TestLive:
    def test_live_samples_are_sent_one_by_one(self) -> None:
        """Once live, each new sample goes out at once, and only that one."""
        agent = Agent(samples=1)
        agent.connect()
        assert sent(agent.sample()) == [frame(2)]

    def test_cumulative_acks_trim_the_backlog(self) -> None:
        """ack(N) forgets every sample up to N."""
        agent = Agent()
        agent.live(samples=4)
        assert agent.session.frame_received(ack(3), agent.clock()) == []
        assert [seq for seq, _ in agent.backlog.after(0)] == [4]
        assert agent.session.counters.acks == 2

    def test_an_error_frame_is_logged_with_repr(self) -> None:
        """The collector's error reason and detail are logged as %r: a newline cannot forge a log line."""
        agent = Agent()
        agent.live()
        actions = agent.session.frame_received(error("schema\nCRITICAL forged", "x\ny"), agent.clock())
        assert lines(actions) == [f"collector {PEER} reported 'schema\\nCRITICAL forged': 'x\\ny'"]
        assert agent.session.counters.error_frames == 1

    @pytest.mark.parametrize(
        ("data", "code", "reason"),
        [
            (b"\xc1", 1008, "malformed_msgpack"),
            (pack({"type": "snapshot"}), 1008, "unexpected_message"),
            (pack({"type": "ack", "seq": -1}), 1008, "schema"),
            (b"\x00" * (64 * 1024 + 1), 1009, "frame_too_large"),
        ],
    )
    def test_a_bad_frame_closes_with_its_code(self, data: bytes, code: int, reason: str) -> None:
        """A frame the agent cannot decode closes the connection with the code the reason carries."""
        agent = Agent()
        agent.live()
        actions = agent.session.frame_received(data, agent.clock())
        assert Close(code, reason) in actions
        assert outcome_of(actions).reason.startswith("bad frame from collector: ")
        assert agent.session.counters.bad_frames == 1


class TestHostileAcks:
    def test_an_ack_above_the_highest_sent_seq_is_refused(self) -> None:
        """ack(2**63-1) after three sent seqs closes 1008 and the backlog keeps all three."""
        agent = Agent()
        agent.live(samples=3)
        actions = agent.session.frame_received(ack(2**63 - 1), agent.clock())
        assert Close(1008, "ack_above_sent") in actions
        outcome = outcome_of(actions)
        assert outcome.was_connected
        assert outcome.refused
        assert outcome.peer_fault, "a collector that lies about acks earns the long backoff"
        assert outcome.min_delay_s == 60.0
        assert len(agent.backlog) == 3
        assert agent.session.counters.acks_refused == 1
        assert outcome.reason == "collector acked seq 9223372036854775807, above the highest seq sent (3); backlog kept"

    def test_a_hello_ack_for_samples_never_sent_is_refused(self) -> None:
        """A fresh instance has sent nothing, so a hello ack above 0 is a lie: nothing is forgotten."""
        agent = Agent(samples=4)
        agent.session.connected(agent.clock())
        actions = agent.session.frame_received(ack(4), agent.clock())
        assert Close(1008, "ack_above_sent") in actions
        assert not outcome_of(actions).was_connected
        assert len(agent.backlog) == 4

    def test_a_hello_ack_up_to_what_an_earlier_connection_sent_is_believed(self) -> None:
        """After a reconnect the collector may hold what the previous connection sent, and no more."""
        agent = Agent()
        agent.live(samples=3)
        agent.session.connection_lost("connection lost", agent.clock())
        agent.sample()
        agent.session.connected(agent.clock())
        actions = agent.session.frame_received(ack(3), agent.clock())
        assert sent(actions) == [frame(4)]
        assert HelloAcked(3) in actions


class TestFloods:
    def test_a_text_flood_logs_once_and_is_closed(self) -> None:
        """Thousands of text frames give one log line and a 1008 close, not a line per frame."""
        agent = Agent()
        agent.live()
        all_actions: list[Action] = []
        for _ in range(1000):
            actions = agent.session.text_received("spam\nline", agent.clock())
            all_actions += actions
            if not agent.session.is_open:
                break
        counters = agent.session.counters
        assert counters.text_frames == UNSOLICITED_BURST + 1
        assert Close(1008, "too_many_frames") in all_actions
        assert lines(all_actions)[0] == f"collector {PEER} sent a text frame, expected binary: 'spam\\nline'"
        assert len(lines(all_actions)) == 1  # the first text frame; the shell logs the flood's outcome
        assert counters.floods == 1
        assert counters.log_lines_suppressed == UNSOLICITED_BURST - 1
        assert "too many unsolicited frames" in outcome_of(all_actions).reason

    def test_a_ping_flood_is_answered_within_the_budget_then_closed(self) -> None:
        """Pings get pongs until the budget is spent, then the connection is closed 1008."""
        agent = Agent()
        agent.live()
        pongs = 0
        while agent.session.is_open:
            actions = agent.session.ping_received(b"p", agent.clock())
            pongs += len(only(actions, SendPong))
        assert pongs == UNSOLICITED_BURST
        assert outcome_of(actions).close_code == 1008

    def test_an_occasional_ping_is_always_answered(self) -> None:
        """One ping a second, for a long time, never hits the budget."""
        agent = Agent()
        agent.live()
        for _ in range(500):
            agent.clock.advance(1.0)
            assert agent.session.ping_received(b"", agent.clock()) == [SendPong(b"")]

    def test_repeated_acks_that_do_not_advance_are_a_flood(self) -> None:
        """The same ack over and over is charged to the budget; advancing acks are not."""
        agent = Agent()
        agent.live(samples=1)
        agent.session.frame_received(ack(1), agent.clock())
        count = 0
        while agent.session.is_open:
            agent.session.frame_received(ack(1), agent.clock())
            count += 1
        assert count == UNSOLICITED_BURST + 1

    def test_error_lines_are_throttled_and_then_say_how_many_were_held_back(self) -> None:
        """Within LOG_EVERY_S only the first error is logged; the next line counts the ones suppressed."""
        agent = Agent()
        agent.live()
        for _ in range(5):
            agent.session.frame_received(error("schema", "d"), agent.clock())
        agent.clock.advance(LOG_EVERY_S)
        actions = agent.session.frame_received(error("schema", "d"), agent.clock())
        assert lines(actions) == [f"collector {PEER} reported 'schema': 'd' (4 more like this suppressed)"]


class TestStop:
    def test_stop_waits_for_the_last_ack_then_closes_1000(self) -> None:
        """With samples in flight, the close waits for the ack that covers them."""
        agent = Agent()
        agent.live(samples=3)
        actions = agent.session.stop(agent.clock())
        assert actions == [WakeAt(agent.clock() + FINAL_ACK_TIMEOUT_S)]
        assert agent.session.frame_received(ack(2), agent.clock()) == [WakeAt(agent.clock() + FINAL_ACK_TIMEOUT_S)]
        assert sent(agent.sample()) == []  # nothing new goes out while stopping
        actions = agent.session.frame_received(ack(3), agent.clock())
        assert actions[0] == Close(1000, "agent stopping")
        assert outcome_of(actions).reason == "stopped"
        assert len(agent.backlog) == 1

    def test_stop_closes_after_a_short_deadline_without_the_ack(self) -> None:
        """A collector that paces its acks does not hold the shutdown up for more than the final-ack deadline."""
        agent = Agent()
        agent.live(samples=2)
        agent.session.stop(agent.clock())
        agent.clock.advance(FINAL_ACK_TIMEOUT_S)
        actions = agent.session.tick(agent.clock())
        assert actions[0] == Close(1000, "agent stopping")
        assert outcome_of(actions).close_code == 1000

    def test_stop_with_everything_acked_closes_at_once(self) -> None:
        """Nothing in flight: the close goes out immediately."""
        agent = Agent()
        agent.live(samples=1)
        agent.session.frame_received(ack(1), agent.clock())
        assert agent.session.stop(agent.clock())[0] == Close(1000, "agent stopping")

    def test_stop_before_the_hello_ack_closes_at_once(self) -> None:
        """Stopping while waiting for the hello's ack does not wait."""
        agent = Agent(samples=2)
        agent.session.connected(agent.clock())
        assert agent.session.stop(agent.clock())[0] == Close(1000, "agent stopping")


class TestCloses:
    @pytest.mark.parametrize("code", [*sorted(RETRY_BY_CLOSE_CODE), 4000, None])
    def test_a_close_from_the_collector_follows_the_retry_table(self, code: int | None) -> None:
        """Each close code's outcome says what shared.retry says: long backoff or not, and the least delay."""
        agent = Agent()
        agent.live()
        [outcome] = agent.session.close_received(code, "bye\n", agent.clock())
        assert isinstance(outcome, Outcome)
        policy = retry_for_close(code)
        assert outcome.refused is (policy.action is RetryAction.BACKOFF_LONG)
        assert outcome.min_delay_s == policy.min_delay_s
        assert outcome.busy is (code == 4503)
        assert outcome.was_connected
        assert outcome.close_code == code
        assert "'bye\\n'" in outcome.reason
        assert agent.session.state is SessionState.IDLE

    def test_a_lost_connection_is_an_abnormal_closure(self) -> None:
        """No close frame: the 1006 row applies, and the outcome keeps the shell's description."""
        agent = Agent()
        agent.live()
        [outcome] = agent.session.connection_lost("connection lost: ServerTimeoutError()", agent.clock())
        assert isinstance(outcome, Outcome)
        assert outcome.reason == "connection lost: ServerTimeoutError()"
        assert outcome.min_delay_s == retry_for_close(ABNORMAL_CLOSURE).min_delay_s

    @pytest.mark.parametrize(
        ("status", "retry_after", "refused", "min_delay_s"),
        [
            (401, None, True, 60.0),
            (503, "5", False, 5.0),
            (503, "soon", False, CAPACITY_DELAY_S),
            (503, None, False, CAPACITY_DELAY_S),
            (429, "2", False, 2.0),
            (500, "9", False, 0.0),
        ],
    )
    def test_an_http_refusal_follows_the_table_and_retry_after(
        self, status: int, retry_after: str | None, refused: bool, min_delay_s: float
    ) -> None:
        """A usable Retry-After on 503/429 is the least delay; otherwise the table's delay for the status."""
        outcome = http_outcome(status, "Busy\r\nX-Forged: 1", retry_after)
        assert outcome.refused is refused
        assert outcome.min_delay_s == min_delay_s
        assert outcome.reason == f"HTTP {status} 'Busy\\r\\nX-Forged: 1'"

    def test_events_on_an_idle_session_are_a_programming_error(self) -> None:
        """Feeding a frame with no connection open raises RuntimeError; a second connected() too."""
        agent = Agent()
        with pytest.raises(RuntimeError, match="expected an open connection"):
            agent.session.frame_received(ack(0), agent.clock())
        agent.session.connected(agent.clock())
        with pytest.raises(RuntimeError, match="expected an idle session"):
            agent.session.connected(agent.clock())

    def test_log_levels(self) -> None:
        """Peer misbehaviour is a warning, the connection line is info."""
        agent = Agent()
        agent.session.connected(agent.clock())
        [connected] = only(agent.session.frame_received(ack(0), agent.clock()), Log)
        [reported] = only(agent.session.frame_received(error("schema", ""), agent.clock()), Log)
        assert isinstance(connected, Log)
        assert isinstance(reported, Log)
        assert (connected.level, reported.level) == (logging.INFO, logging.WARNING)
