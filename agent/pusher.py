"""The pusher: the socket shell around ``AgentSession``, one websocket to the collector at a time.

All protocol decisions (hello, the hello's ack and its deadline, replay,
cumulative acks, error frames, closes, keepalive pings, the budget for a
hostile collector, what a close means for the retry) are made by
``agent.session``; this module only does the I/O they ask for over an
``agent.transport.Link`` and backs off between attempts (``agent.backoff``).
Not here: sampling, encoding heartbeats or the selector loop itself
(``agent.runner`` owns the loop and calls ``step``).

No asyncio and no aiohttp: the agent's RSS budget (20 MB over ws://) cannot
carry them (asyncio alone imports ssl: +8 MB, bench/agent_overhead.py).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from agent.actions import Action, Close, HelloAcked, Log, SendFrame, SessionCounters, WakeAt
from agent.backlog import Backlog
from agent.backoff import Backoff, Outcome, http_outcome
from agent.events import Failed, Lost, Opened, Refused
from agent.session import FINAL_ACK_TIMEOUT_S, AgentSession
from agent.transport import Link, Phase
from agent.wire import MAX_INBOUND_BYTES
from agent.worker import Job
from agent.wsclient import BINARY, PING, PONG, CloseFrame, Message, Ping, Pong

__all__ = ["Outcome", "Pusher"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0  # wait this long for the collector's close reply: shutdown must finish within 2 s
# Replay pauses while this much is queued for the kernel: a slow collector costs at most this, not the backlog twice.
SEND_HIGH_WATER_BYTES = 256 * 1024
SEND_LOW_WATER_BYTES = 64 * 1024


def resolve(url: SplitResult) -> list[tuple[Any, ...]]:
    """The addresses to try for ``url``'s host and port (run in a worker thread: it may block)."""
    port = url.port or (443 if url.scheme == "wss" else 80)
    return socket.getaddrinfo(url.hostname, port, type=socket.SOCK_STREAM)


class Pusher:
    """Owns the connection to the collector and replays the backlog over it; driven by ``step``."""

    def __init__(
        self,
        url: str,
        backlog: Backlog,
        make_hello: Callable[[int], bytes],
        *,
        token: str | None = None,
        ws_heartbeat_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        hello_ack_timeout_s: float = 10.0,
        final_ack_timeout_s: float = FINAL_ACK_TIMEOUT_S,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[float, Outcome], None] | None = None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.backlog = backlog
        self.backoff = backoff if backoff is not None else Backoff()
        self.session = AgentSession(
            backlog,
            make_hello,
            peer=url,
            hello_ack_timeout_s=hello_ack_timeout_s,
            final_ack_timeout_s=final_ack_timeout_s,
            keepalive_s=ws_heartbeat_s,
        )
        self.connections = 0
        self.last_outcome: Outcome | None = None
        self.link: Link | None = None
        self._closing: list[Link] = []  # links finishing their close handshake beside the next attempt
        self._url = urlsplit(url)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._connect_timeout_s = connect_timeout_s
        self._clock = clock
        self._on_retry = on_retry
        self._wake = wake  # called from the resolver thread: the loop must look again
        self._retry_at = clock()
        self._wake_at: float | None = None
        self._new_frames = False
        self._stopping = self._stop_begun = False
        self._blocked = False
        self._logged_failure: str | None = None

    @property
    def counters(self) -> SessionCounters:
        """What the session counted: acks, refused acks, floods, suppressed log lines..."""
        return self.session.counters

    @property
    def finished(self) -> bool:
        """Stopped, and every connection is closed."""
        return self._stopping and self.link is None and not self._closing

    def notify(self) -> None:
        """Tell the pusher that the backlog has a new frame (from the loop's thread)."""
        self._new_frames = True

    def stop(self) -> None:
        """Begin a clean stop: wait for the last ack (briefly), close 1000, end."""
        self._stopping = True

    def links(self) -> list[Link]:
        """Every link with a socket the loop should watch."""
        return [link for link in (self.link, *self._closing) if link is not None]

    def next_wake(self) -> float | None:
        """The monotonic time of the next timer: a session timer, a dial deadline, or the next attempt."""
        times = [link.deadline for link in self.links() if link.phase is not Phase.OPEN]
        if any(link.more_to_read for link in self.links()):
            times.append(self._clock())
        if self._wake_at is not None and self.session.is_open:
            times.append(self._wake_at)
        if self.link is None and not self._stopping:
            times.append(self._retry_at)
        return min(times) if times else None

    def step(self, now: float, ready: dict[int, int]) -> None:
        """Do everything that is due at ``now``; ``ready`` maps a file descriptor to its selector mask."""
        for link in list(self._closing):
            link.advance(now, ready.get(link.fileno() or -1, 0))
            if link.phase is Phase.DONE:
                self._closing.remove(link)
        if self.link is None and not self._stopping and now >= self._retry_at:
            self._dial(now)
        current = self.link
        if current is not None:
            for event in current.advance(now, ready.get(current.fileno() or -1, 0)):
                if self.link is not current:
                    break  # the session ended the connection: later events belong to nobody
                self._on_event(current, event, now)
        if self._stopping and not self._stop_begun:
            self._stop_begun = True
            if self.session.is_open:
                self._run(self.session.stop(now), now)
            elif self.link is not None:
                self.link.abort()
                self._ended(Outcome("stopped while connecting"), now)
        if self._new_frames:
            self._new_frames = False
            if self.session.is_open:
                self._run(self.session.sample_added(now), now)
        if self._wake_at is not None and now >= self._wake_at and self.session.is_open:
            self._run(self.session.tick(now), now)
        self._check_send_buffer(now)

    def _dial(self, now: float) -> None:
        url = self._url
        addresses = Job(lambda: resolve(url), self._wake, name="nodewatch-resolver")
        self.link = Link(
            self._url,
            self._headers,
            addresses,
            now=now,
            connect_timeout_s=self._connect_timeout_s,
            close_timeout_s=CLOSE_TIMEOUT_S,
            max_message_bytes=MAX_INBOUND_BYTES,
        )
        self._blocked = False

    def _on_event(self, link: Link, event: object, now: float) -> None:
        session = self.session
        if isinstance(event, Opened):
            self._run(session.connected(now), now)
        elif isinstance(event, Refused):
            self._ended(http_outcome(event.status, event.phrase, event.headers.get("retry-after")), now)
        elif isinstance(event, Failed):
            self._ended(Outcome(event.why), now)
        elif isinstance(event, Message):
            if event.text:
                self._run(session.text_received(event.data.decode("utf-8"), now), now)
            else:
                self._run(session.frame_received(event.data, now), now)
        elif isinstance(event, Ping):
            self._run(session.ping_received(event.data, now), now)
        elif isinstance(event, Pong):
            self._run(session.pong_received(now), now)
        elif isinstance(event, CloseFrame):
            link.answer_close(event, now)
            self._run(session.close_received(event.code, event.reason, now), now)
        elif isinstance(event, Lost):
            self._run(session.connection_lost(f"connection lost: {event.why}", now, close_code=event.close_code), now)

    def _run(self, actions: list[Action], now: float) -> None:
        """Do what the session asked, in order."""
        link = self.link
        for action in actions:
            if isinstance(action, SendFrame) and link is not None:
                link.send(BINARY, action.data)
            elif isinstance(action, Pong) and link is not None:  # a pong or ping to send (agent.actions)
                link.send(PONG, action.data)
            elif isinstance(action, Ping) and link is not None:
                link.send(PING, action.data)
            elif isinstance(action, Close) and link is not None:
                link.close(action.code, action.reason, now)
            elif isinstance(action, WakeAt):
                self._wake_at = action.at
            elif isinstance(action, Log):
                log.log(action.level, action.msg, *action.args)
            elif isinstance(action, HelloAcked):
                self.connections += 1
                self.backoff.connected(now)
                self._logged_failure = None
            elif isinstance(action, Outcome):
                self._ended(action, now)
        if link is not None:
            link.flush()  # send at once what was queued, before the loop sleeps

    def _ended(self, outcome: Outcome, now: float) -> None:
        """The connection is over: let it finish closing beside the next attempt, and schedule that attempt."""
        link, self.link, self._wake_at = self.link, None, None
        if link is not None:
            if link.phase is Phase.OPEN:
                link.abort()  # the session ended it without a Close (lost, keepalive timeout): nothing to say
            if link.phase is not Phase.DONE:
                self._closing.append(link)
        self.last_outcome = outcome
        if self._stopping:
            return
        delay_s = self.backoff.failure(now, refused=outcome.refused, floor_s=outcome.min_delay_s)
        self._retry_at = now + delay_s
        self._log_failure(outcome, delay_s)
        if self._on_retry is not None:
            self._on_retry(delay_s, outcome)

    def _check_send_buffer(self, now: float) -> None:
        link = self.link
        if link is None or not self.session.is_open:
            return
        if not self._blocked and link.pending_bytes > SEND_HIGH_WATER_BYTES:
            self._blocked = True
            self._run(self.session.send_blocked(True, now), now)
        elif self._blocked and link.pending_bytes < SEND_LOW_WATER_BYTES:
            self._blocked = False
            self._run(self.session.send_blocked(False, now), now)

    def _log_failure(self, outcome: Outcome, delay_s: float) -> None:
        """One line per state change: the first failure after a connection, or a new kind of failure."""
        if outcome.was_connected or outcome.reason != self._logged_failure:
            self._logged_failure = outcome.reason
            log.warning(
                "not connected to %s: %s; retrying in %.1f s%s",
                self.url,
                outcome.reason,
                delay_s,
                self._why_waiting(outcome),
            )
        else:
            log.debug("still not connected to %s: %s; retrying in %.1f s", self.url, outcome.reason, delay_s)

    def _why_waiting(self, outcome: Outcome) -> str:
        if outcome.peer_fault:
            return " (the collector broke the protocol: backing off 1 to 5 min)"
        if outcome.refused:
            return " (the collector refused us: backing off up to 5 min)"
        if not outcome.busy:
            return ""
        floor_s = self.backoff.last_floor_s
        if outcome.retry_after_s is not None and floor_s > 0:
            return f" (collector at capacity: Retry-After {floor_s:g} s)"
        if floor_s > 0:
            return f" (collector at capacity: waiting at least {floor_s:g} s)"
        return " (collector at capacity)"
