"""AgentSession's keepalive (a ping after silence, lost without a pong) and send back-pressure, with a fake clock."""

from __future__ import annotations

import msgpack

from agent.backlog import Backlog
from agent.backoff import Outcome
from agent.session import SEND_BATCH, Action, AgentSession, SendFrame, SendPing, WakeAt
from tests.support.clock import FakeClock

KEEPALIVE_S = 10.0


def ack(seq: int) -> bytes:
    data: bytes = msgpack.packb({"type": "ack", "seq": seq})
    return data


def wake(actions: list[Action]) -> float | None:
    times = [a.at for a in actions if isinstance(a, WakeAt)]
    return times[-1] if times else None


def live_session(samples: int = 0) -> tuple[AgentSession, Backlog, FakeClock]:
    """A session with a keepalive, connected and acked, over a backlog holding ``samples`` frames."""
    clock = FakeClock()
    backlog = Backlog(1000)
    for seq in range(1, samples + 1):
        backlog.append(seq, b"beat-%d" % seq)
    session = AgentSession(backlog, lambda _: b"hello", peer="ws://c", keepalive_s=KEEPALIVE_S)
    session.connected(clock())
    return session, backlog, clock


class TestKeepalive:
    def test_silence_draws_a_ping_and_a_pong_keeps_the_connection(self) -> None:
        """After keepalive_s without a frame the agent pings; the pong resets the timer and nothing is lost."""
        session, _, clock = live_session()
        actions = session.frame_received(ack(0), clock())
        assert wake(actions) == clock() + KEEPALIVE_S
        clock.advance(KEEPALIVE_S)
        actions = session.tick(clock())
        assert SendPing(b"") in actions
        assert wake(actions) == clock() + KEEPALIVE_S / 2
        clock.advance(1.0)
        actions = session.pong_received(clock())
        assert wake(actions) == clock() + KEEPALIVE_S
        assert session.is_open

    def test_no_pong_within_half_the_interval_loses_the_connection(self) -> None:
        """A collector that stalls is left 1.5 keepalive intervals after its last frame, for a normal retry."""
        session, _, clock = live_session()
        session.frame_received(ack(0), clock())
        clock.advance(KEEPALIVE_S)
        session.tick(clock())
        clock.advance(KEEPALIVE_S / 2)
        actions = session.tick(clock())
        outcome = actions[-1]
        assert isinstance(outcome, Outcome)
        assert "no PONG" in outcome.reason
        assert outcome.was_connected
        assert not outcome.refused
        assert session.counters.keepalive_timeouts == 1
        assert not session.is_open

    def test_acks_arriving_keep_pings_away(self) -> None:
        """While acks come every second, the agent never pings: keepalive costs nothing on a live link."""
        session, backlog, clock = live_session()
        session.frame_received(ack(0), clock())
        for seq in range(1, 30):
            clock.advance(1.0)
            backlog.append(seq, b"beat")
            actions = session.sample_added(clock()) + session.frame_received(ack(seq), clock())
            actions += session.tick(clock())
            assert not [a for a in actions if isinstance(a, SendPing)]


class TestSendBlocked:
    def test_replay_pauses_while_the_send_buffer_is_full_and_resumes_after(self) -> None:
        """With the shell's buffer full, no frame is handed out; once it drains, replay goes on from where it was."""
        session, _, clock = live_session(samples=3 * SEND_BATCH)
        first = session.frame_received(ack(0), clock())
        assert len([a for a in first if isinstance(a, SendFrame)]) == SEND_BATCH
        blocked = session.send_blocked(True, clock())
        assert not [a for a in blocked if isinstance(a, SendFrame)]
        assert wake(blocked) != clock()  # no busy loop while blocked: only the keepalive timer
        assert not [a for a in session.tick(clock()) if isinstance(a, SendFrame)]
        resumed = session.send_blocked(False, clock())
        frames = [a.data for a in resumed if isinstance(a, SendFrame)]
        assert frames[0] == b"beat-%d" % (SEND_BATCH + 1)
