"""An in-memory pair: the agent's ``AgentSession`` and the collector's ``IngestSession`` over a real ``NodeCache``.

Two FIFO queues stand for the two directions of one websocket; a ``FakeClock``
drives both sides' timers. No sockets, no asyncio: each session's actions are
executed the way its shell would (frames queued, a close delivered after the
frames before it, a drop seen as a lost connection). Not here: anything the
shells add on top (the agent's keepalive pings, off here; the collector's 1001
at shutdown; the agent's backoff sleeps).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from agent.backlog import Backlog
from agent.backoff import Outcome
from agent.session import Action as AgentAction
from agent.session import AgentSession, Close, Log, SendFrame, SendPong, WakeAt
from collector import ingest_session as ingest
from collector.cache import NodeCache
from collector.ingest_session import Actions as CollectorActions
from shared.codec import encode
from tests.support.clock import FakeClock
from tests.support.messages import WALL_T0, heartbeat, hello

# One item on the wire: a binary or text frame, a close frame (code, reason), or the connection dropping.
Item = tuple[str, bytes | str | int | None, str]


@dataclass
class Pair:
    """One agent instance and the collector's side of each of its connections."""

    cache: NodeCache
    clock: FakeClock = field(default_factory=FakeClock)
    node_id: str = "pair-node"
    instance: str = "inst-1"
    interval_s: float = 1.0
    ack_every: int = 1
    backlog_samples: int = 1000
    hello_overrides: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.backlog = Backlog(self.backlog_samples)
        self.agent = AgentSession(self.backlog, self._hello, peer="memory")
        self.seq = 0
        self.outcomes: list[Outcome] = []
        self.agent_log: list[str] = []
        self.collector_closes: list[ingest.Close] = []
        self.sessions: list[ingest.IngestSession] = []
        self.agent_wake: float | None = None
        self.collector_wake: float | None = None
        self._to_collector: deque[Item] = deque()
        self._to_agent: deque[Item] = deque()
        self._conns = itertools.count(1)
        self._collector_open = False

    def _hello(self, dropped: int) -> bytes:
        message = hello(
            self.node_id, self.instance, interval_s=self.interval_s, dropped=dropped, ack_every=self.ack_every
        )
        return encode(message.model_copy(update=self.hello_overrides)) if self.hello_overrides else encode(message)

    @property
    def ingest(self) -> ingest.IngestSession:
        """The collector's session of the current connection."""
        return self.sessions[-1]

    def wall(self) -> float:
        return WALL_T0 + self.clock.now - 1000.0

    # -- what happens ------------------------------------------------------------------------------------

    def connect(self) -> None:
        """A new websocket: the collector's session starts, the agent's says hello, frames flow."""
        port = ingest.CachePort(self.cache, next(self._conns), self.wall)
        self.sessions.append(ingest.IngestSession(port, now=self.clock()))
        self._to_collector.clear()
        self._to_agent.clear()
        self._collector_open = True
        self._collector(self.ingest.start())
        self._agent(self.agent.connected(self.clock()))
        self.pump()

    def connect_unanswered(self) -> None:
        """A websocket to a collector stuck before its first ack: the agent's hello goes nowhere."""
        self._to_collector.clear()
        self._to_agent.clear()
        self._collector_open = False
        self._agent(self.agent.connected(self.clock()))
        self.pump()

    def connect_silent(self) -> None:
        """A websocket on which no hello ever comes: only the collector's session runs."""
        port = ingest.CachePort(self.cache, next(self._conns), self.wall)
        self.sessions.append(ingest.IngestSession(port, now=self.clock()))
        self._collector_open = True
        self._collector(self.ingest.start())

    def sample(self, frame: bytes | None = None) -> None:
        """The agent takes its next sample (``frame`` replaces the heartbeat's bytes, for a buggy agent)."""
        self.seq += 1
        self.backlog.append(self.seq, encode(heartbeat(self.seq)) if frame is None else frame)
        if self.agent.is_open:
            self._agent(self.agent.sample_added(self.clock()))
        self.pump()

    def agent_sends(self, item: Item) -> None:
        """Put a raw item on the agent-to-collector direction (what a buggy agent might send)."""
        self._to_collector.append(item)
        self.pump()

    def collector_sends(self, item: Item) -> None:
        """Put a raw item on the collector-to-agent direction (what the collector's shell adds)."""
        self._to_agent.append(item)
        self.pump()

    def collector_does(self, actions: CollectorActions) -> None:
        """Run actions the collector's session returned outside the pair (e.g. ``fail``)."""
        self._collector(actions)
        self.pump()

    def lose_connection(self) -> None:
        """The network drops: neither side gets a close frame."""
        if self.agent.is_open:
            self._agent(self.agent.connection_lost("connection lost", self.clock()))
        if self._collector_open:
            self._collector_open = False
            self._collector(self.ingest.receive_close(None, self.clock()))

    def stop(self) -> None:
        """The agent is told to stop."""
        self._agent(self.agent.stop(self.clock()))
        self.pump()

    def advance(self, seconds: float) -> None:
        """Move the clock, firing both sides' timers in time order as they fall due."""
        target = self.clock.now + seconds
        while True:
            due = [t for t in (self.agent_wake, self.collector_wake) if t is not None and t <= target]
            if not due:
                self.clock.now = target
                return
            self.clock.now = max(self.clock.now, min(due))
            now = self.clock()
            if self.agent_wake is not None and self.agent_wake <= now:
                self.agent_wake = None
                self._agent(self.agent.tick(now) if self.agent.is_open else [])
            if self.collector_wake is not None and self.collector_wake <= now:
                self.collector_wake = None
                self._collector(self.ingest.tick(now))
            self.pump()

    def pump(self) -> None:
        """Deliver queued items, one from each direction in turn, until both directions are empty."""
        while self._to_collector or self._to_agent:
            if self._to_collector:
                self._deliver_to_collector(self._to_collector.popleft())
            if self._to_agent:
                self._deliver_to_agent(self._to_agent.popleft())

    # -- the two shells -------------------------------------------------------------------------------------

    def _deliver_to_collector(self, item: Item) -> None:
        if not self._collector_open:
            return
        kind, payload, _ = item
        now = self.clock()
        if kind == "close":
            self._collector_open = False
            code = payload if isinstance(payload, int) else None
            self._collector(self.ingest.receive_close(code, now))
        elif isinstance(payload, bytes | str):
            self._collector(self.ingest.receive_frame(payload, now))

    def _deliver_to_agent(self, item: Item) -> None:
        if not self.agent.is_open:
            return
        kind, payload, reason = item
        now = self.clock()
        if kind == "frame" and isinstance(payload, bytes):
            self._agent(self.agent.frame_received(payload, now))
        elif kind == "close":
            self._agent(self.agent.close_received(payload if isinstance(payload, int) else None, reason, now))
        elif kind == "drop":
            self._agent(self.agent.connection_lost("connection lost (no close frame)", now))

    def _agent(self, actions: list[AgentAction]) -> None:
        self.agent_wake = None  # every batch carries the session's current timer, or none
        for action in actions:
            if isinstance(action, SendFrame):
                self._to_collector.append(("frame", action.data, ""))
            elif isinstance(action, Close):
                self._to_collector.append(("close", action.code, action.reason))
            elif isinstance(action, WakeAt):
                self.agent_wake = action.at
            elif isinstance(action, Log):
                self.agent_log.append(action.msg % action.args)
            elif isinstance(action, Outcome):
                self.outcomes.append(action)
            elif isinstance(action, SendPong):
                pass  # no pings in memory

    def _collector(self, actions: CollectorActions) -> None:
        for action in actions:
            if isinstance(action, ingest.SendFrame):
                self._to_agent.append(("frame", action.data, ""))
            elif isinstance(action, ingest.Close):
                self.collector_closes.append(action)
                self._collector_open = False
                self._to_agent.append(("close", action.code, action.reason))
            elif isinstance(action, ingest.Drop):
                self._collector_open = False
                self._to_agent.append(("drop", None, action.detail))
            elif isinstance(action, ingest.WakeAt):
                self.collector_wake = action.at

    # -- what a test reads ------------------------------------------------------------------------------

    def history(self) -> list[int]:
        """The seqs the collector's history holds for the node."""
        record = self.cache.get(self.node_id)
        return [] if record is None else list(record.history.to_history().seq)

    def held(self) -> list[int]:
        """The seqs still in the agent's backlog (not acked)."""
        return [seq for seq, _ in self.backlog.after(0)]
