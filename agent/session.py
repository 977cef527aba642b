"""The agent's side of the ingest protocol as a pure state machine, in the shape of h11's ``Connection``.

Fed events (connected, a frame, a text frame, a ping or pong, a close, a lost
connection, a new sample, a tick, a stop request), it returns actions as
values (``agent.actions``): ``SendFrame``, ``SendPong``, ``SendPing``, ``Close``,
``WakeAt``, ``Log``, ``HelloAcked`` and, last of all, the ``Outcome`` that ends
the connection. The caller does the I/O and passes ``now`` (monotonic seconds)
in. Not here: sockets, sleeping, the backoff arithmetic (``agent.backoff``) or
building heartbeats (``agent.runner``); ``agent.pusher`` is the socket shell.

With ``keepalive_s``, a ping goes out after that much silence from the
collector and the connection is lost when nothing comes back within half of
it (aiohttp's ``heartbeat=`` rule), so a collector that stalls is noticed
within ~1.5x. ``send_blocked`` pauses replay while the shell's send buffer is full.

One session serves one agent instance across all its connections, so it knows
the highest seq it ever sent. Per connection (docs/protocol.md, section 4.1)::

    IDLE --connected--> AWAIT_ACK        hello sent; closes 1008 after hello_ack_timeout_s
    AWAIT_ACK --ack(N)--> LIVE           backlog trimmed to N, the rest replayed oldest first, then live
    LIVE --stop--> STOPPING              waits for an ack of every sent seq, at most final_ack_timeout_s
    any --close, loss, or a Close of ours--> IDLE, with an Outcome

Every batch of actions ends with ``WakeAt(t)`` when a timer is pending and
without one when none is: the caller calls ``tick`` at ``t``.

What a hostile collector cannot do (issue 13):
- an ack above the highest seq ever sent is refused (close 1008); the backlog is kept;
- frames that carry no progress (text, errors, pings, pongs, acks that do not advance)
  draw on a token bucket; past it the session closes 1008, so one connection's CPU is bounded;
- after any close of ours for the collector's fault the agent backs off as for 1008 (60 s to 5 min);
- log lines about peer frames are throttled per kind and counted; peer text goes out with %r.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from agent.actions import Action, Close, HelloAcked, Log, SendFrame, SendPing, SendPong, SessionCounters, WakeAt
from agent.backlog import Backlog
from agent.backoff import Outcome, backs_off_long, violation_outcome
from agent.schedule import LogThrottle, TokenBucket
from agent.wire import InboundAck, InboundError, decode_inbound
from shared.errors import CloseCode, ProtocolError
from shared.retry import retry_for_close

__all__ = [
    "Action", "AgentSession", "Close", "HelloAcked", "Log", "SendFrame", "SendPing", "SendPong",
    "SessionCounters", "SessionState", "WakeAt",
]  # fmt: skip

HELLO_ACK_TIMEOUT_S = 10.0  # the collector acks the hello at once; ten seconds covers a loaded one
# Shutdown must finish within 2 s (SIGTERM test): half a second for the last ack, one for the close handshake.
FINAL_ACK_TIMEOUT_S = 0.5
SEND_BATCH = 64  # frames per event while replaying, so a stop or an ack is seen between batches
# A collector sends at most one error, and pings rarely (it does not ping agents at all): 30 such frames at once,
# then 3 a second, is far above any honest peer and caps what a flood costs before we close.
UNSOLICITED_BURST = 30
UNSOLICITED_PER_S = 3.0
LOG_EVERY_S = 10.0  # at most one log line per kind of peer misbehaviour in this many seconds


class SessionState(Enum):
    """Where the current connection is in the conversation."""

    IDLE = "idle"
    AWAIT_ACK = "await_ack"
    LIVE = "live"
    STOPPING = "stopping"


class AgentSession:
    """The agent's conversation with one collector, connection after connection; no I/O."""

    def __init__(
        self,
        backlog: Backlog,
        make_hello: Callable[[int], bytes],
        *,
        peer: str,
        hello_ack_timeout_s: float = HELLO_ACK_TIMEOUT_S,
        final_ack_timeout_s: float = FINAL_ACK_TIMEOUT_S,
        keepalive_s: float | None = None,
    ) -> None:
        self.backlog = backlog
        self.peer = peer
        self.counters = SessionCounters()
        self.state = SessionState.IDLE
        self.highest_sent = 0  # over every connection: the collector cannot hold more than this
        self._make_hello = make_hello
        self._hello_ack_timeout_s = hello_ack_timeout_s
        self._final_ack_timeout_s = final_ack_timeout_s
        self._bucket = TokenBucket(UNSOLICITED_BURST, UNSOLICITED_PER_S)
        self._throttle = LogThrottle(LOG_EVERY_S)
        self._sent = 0  # highest seq sent on this connection
        self._acked = 0  # highest seq acked on this connection
        self._deadline: float | None = None
        self._more_to_send = False
        self._keepalive_s = keepalive_s
        self._heard_at = 0.0  # the collector's last frame: a ping goes out after keepalive_s of silence
        self._pong_due: float | None = None
        self._send_blocked = False  # the shell's send buffer is full: replay waits for it to drain

    @property
    def is_open(self) -> bool:
        """A connection is in progress (between ``connected`` and its ``Outcome``)."""
        return self.state is not SessionState.IDLE

    @property
    def unacked_sent(self) -> int:
        """Seqs sent on this connection that no ack covers yet."""
        return max(0, self._sent - self._acked)

    def connected(self, now: float) -> list[Action]:
        """The websocket is open: send the hello and wait for its ack."""
        if self.is_open:
            raise RuntimeError(f"expected an idle session, got {self.state.value!r}")
        self.state = SessionState.AWAIT_ACK
        self._bucket = TokenBucket(UNSOLICITED_BURST, UNSOLICITED_PER_S)
        self._sent = self._acked = 0
        self._more_to_send = self._send_blocked = False
        self._heard_at, self._pong_due = now, None
        self._deadline = now + self._hello_ack_timeout_s
        return self._finish([SendFrame(self._make_hello(self.backlog.dropped))], now)

    def frame_received(self, data: bytes, now: float) -> list[Action]:
        """A binary frame from the collector: an ack or an error, or a protocol break."""
        self._heard(now)
        try:
            message = decode_inbound(data)
        except ProtocolError as exc:
            self.counters.bad_frames += 1
            line = Log(
                logging.WARNING, "collector %s sent a bad frame (%s): %r", (self.peer, exc.reason.value, data[:64])
            )
            why = f"bad frame from collector: {exc.detail:.200}"
            return [line, *self._fail(int(exc.close_code), exc.reason.value, why)]
        if isinstance(message, InboundAck):
            return self._finish(self._ack(message.seq, now), now)
        return self._finish(self._error(message, now), now)

    def text_received(self, text: str, now: float) -> list[Action]:
        """A text frame: never part of ingest; logged (throttled) and charged to the budget."""
        self._heard(now)
        self.counters.text_frames += 1
        flood = self._unsolicited("text", now)
        if flood is not None:
            return flood
        msg = "collector %s sent a text frame, expected binary: %r"
        lines = self._log("text", now, logging.WARNING, msg, (self.peer, text[:100]))
        return self._finish(lines, now)

    def ping_received(self, data: bytes, now: float) -> list[Action]:
        """A ping: answered with a pong, within the budget."""
        self._heard(now)
        self.counters.pings += 1
        flood = self._unsolicited("ping", now)
        return flood if flood is not None else self._finish([SendPong(data)], now)

    def pong_received(self, now: float) -> list[Action]:
        """A pong, solicited (our keepalive) or not: charged to the budget."""
        self._heard(now)
        self.counters.pongs += 1
        flood = self._unsolicited("pong", now)
        return flood if flood is not None else self._finish([], now)

    def sample_added(self, now: float) -> list[Action]:
        """The backlog has a new frame: send it if the conversation is live."""
        return self._finish(self._pump() if self.state is SessionState.LIVE else [], now)

    def send_blocked(self, blocked: bool, now: float) -> list[Action]:
        """The shell's send buffer filled up (True) or drained (False): pause or resume sending."""
        self._send_blocked = blocked
        return self.sample_added(now)

    def tick(self, now: float) -> list[Action]:
        """A ``WakeAt`` time came: a deadline, or the next replay batch."""
        if self.state is SessionState.AWAIT_ACK and self._deadline is not None and now >= self._deadline:
            why = "collector did not ack the hello in time"
            return self._fail(int(CloseCode.POLICY_VIOLATION), "hello_ack_timeout", why, peer_fault=False)
        if self.state is SessionState.STOPPING and self._deadline is not None and now >= self._deadline:
            return self._goodbye()
        actions: list[Action] = []
        if self.is_open and self._keepalive_s is not None:
            if self._pong_due is not None and now >= self._pong_due:
                self.counters.keepalive_timeouts += 1
                return self.connection_lost(f"no PONG from the collector within {self._keepalive_s / 2:g} s", now)
            if self._pong_due is None and now >= self._heard_at + self._keepalive_s:
                self._pong_due = now + self._keepalive_s / 2  # aiohttp's rule: wait half the interval for it
                actions.append(SendPing(b""))
        if self.state is SessionState.LIVE:
            actions += self._pump()
        return self._finish(actions, now)

    def stop(self, now: float) -> list[Action]:
        """The agent is stopping: close at once, or after the ack of every sent seq (or a short deadline)."""
        if self.state is SessionState.LIVE and self.unacked_sent > 0:
            self.state = SessionState.STOPPING
            self._deadline = now + self._final_ack_timeout_s
            return self._finish([], now)
        if self.state in {SessionState.LIVE, SessionState.AWAIT_ACK}:
            return self._goodbye()
        return self._finish([], now)

    def close_received(self, code: int | None, reason: str, now: float) -> list[Action]:
        """The collector closed (``code`` None: no close frame); the retry table decides what comes next."""
        self._expect_open()
        extra = f", {reason[:100]!r}" if reason else ""
        policy = retry_for_close(code)
        outcome = Outcome(
            f"closed by the collector (code {code}{extra})",
            refused=backs_off_long(policy),
            close_code=code,
            was_connected=self._established(),
            busy=code == CloseCode.CAPACITY_REACHED,
            min_delay_s=policy.min_delay_s,
        )
        self._reset()
        return [outcome]

    def connection_lost(self, why: str, now: float, *, close_code: int | None = None) -> list[Action]:
        """The connection failed without a close frame; ``close_code``: the shell closed it for the peer's fault."""
        self._expect_open()
        if close_code is not None:  # bad frames or the inbound budget (agent.transport): back off as for 1008
            self.counters.violation_closes += 1
            outcome = violation_outcome(why, close_code, was_connected=self._established())
            self._reset()
            return [outcome]
        policy = retry_for_close(None)
        outcome = Outcome(
            why, refused=backs_off_long(policy), was_connected=self._established(), min_delay_s=policy.min_delay_s
        )
        self._reset()
        return [outcome]

    def _ack(self, seq: int, now: float) -> list[Action]:
        if seq > self.highest_sent:
            self.counters.acks_refused += 1
            why = f"collector acked seq {seq}, above the highest seq sent ({self.highest_sent}); backlog kept"
            return self._fail(int(CloseCode.POLICY_VIOLATION), "ack_above_sent", why)
        self.counters.acks += 1
        if self.state is SessionState.AWAIT_ACK:
            self.backlog.ack(seq)
            self._sent = self._acked = seq
            self.state = SessionState.LIVE
            self._deadline = None
            self.counters.connections += 1
            line = Log(
                logging.INFO,
                "connected to %s; collector holds seq %d, %d sample(s) to send",
                (self.peer, seq, len(self.backlog)),
            )
            return [HelloAcked(seq), line, *self._pump()]
        if seq <= self._acked:
            flood = self._unsolicited("ack", now)
            return flood if flood is not None else []
        self._acked = seq
        self.backlog.ack(seq)
        if self.state is SessionState.STOPPING and self._acked >= self._sent:
            return self._goodbye()
        return []

    def _error(self, message: InboundError, now: float) -> list[Action]:
        self.counters.error_frames += 1
        flood = self._unsolicited("error", now)
        if flood is not None:
            return flood
        args = (self.peer, message.reason, message.detail[:200])
        return self._log("error", now, logging.WARNING, "collector %s reported %r: %r", args)

    def _pump(self) -> list[Action]:
        """The next batch of frames after the last one sent, oldest first; none while the shell cannot send."""
        if self._send_blocked:
            return []
        batch = self.backlog.after(self._sent, limit=SEND_BATCH + 1)
        self._more_to_send = len(batch) > SEND_BATCH
        batch = batch[:SEND_BATCH]
        if batch:
            self._sent = batch[-1][0]
            self.highest_sent = max(self.highest_sent, self._sent)
        return [SendFrame(frame) for _, frame in batch]

    def _unsolicited(self, kind: str, now: float) -> list[Action] | None:
        """None while the budget lasts; else the actions that close the connection."""
        if self._bucket.take(now):
            return None
        self.counters.floods += 1  # the shell logs the outcome, once per connection
        why = f"collector sent too many unsolicited frames (over {UNSOLICITED_BURST} at once, last: {kind})"
        return self._fail(int(CloseCode.POLICY_VIOLATION), "too_many_frames", why)

    def _log(self, key: str, now: float, level: int, msg: str, args: tuple[object, ...]) -> list[Action]:
        held = self._throttle.allow(key, now)
        if held is None:
            self.counters.log_lines_suppressed += 1
            return []
        if held:
            return [Log(level, msg + " (%d more like this suppressed)", (*args, held))]
        return [Log(level, msg, args)]

    def _goodbye(self) -> list[Action]:
        outcome = Outcome("stopped", close_code=int(CloseCode.NORMAL), was_connected=self._established())
        self._reset()
        line = Log(logging.INFO, "closed the connection to %s (agent stopping)", (self.peer,))
        return [Close(int(CloseCode.NORMAL), "agent stopping"), line, outcome]

    def _fail(self, code: int, reason: str, why: str, *, peer_fault: bool = True) -> list[Action]:
        """Close with ``code``; the collector broke the protocol unless said otherwise: back off long."""
        if peer_fault:
            self.counters.violation_closes += 1
            outcome = violation_outcome(why, code, was_connected=self._established())
        else:
            outcome = Outcome(why, close_code=code, was_connected=self._established())
        self._reset()
        return [Close(code, reason), outcome]

    def _finish(self, actions: list[Action], now: float) -> list[Action]:
        if self._more_to_send and not self._send_blocked and self.state is SessionState.LIVE:
            actions.append(WakeAt(now))
            return actions
        timers = [] if self._deadline is None else [self._deadline]
        if self.is_open and self._keepalive_s is not None:
            timers.append(self._heard_at + self._keepalive_s if self._pong_due is None else self._pong_due)
        if timers:
            actions.append(WakeAt(min(timers)))
        return actions

    def _established(self) -> bool:
        return self.state in {SessionState.LIVE, SessionState.STOPPING}

    def _reset(self) -> None:
        self.state = SessionState.IDLE
        self._deadline = self._pong_due = None
        self._more_to_send = False

    def _heard(self, now: float) -> None:
        """Any frame from the collector shows it is alive: the keepalive starts over."""
        self._expect_open()
        self._heard_at, self._pong_due = now, None

    def _expect_open(self) -> None:
        if not self.is_open:
            raise RuntimeError("expected an open connection, got an event for an idle session")
