"""The ``IngestPort`` over a ``NodeCache``: where an ``IngestSession`` delivers one connection's messages.

``CachePort`` turns a session's hello, heartbeats and close into ``NodeCache``
calls for one connection id, and reports what came of them to an
``IngestObserver``: the aiohttp shell fans changes out, aborts replaced
connections and counts heartbeats; an in-memory pair passes ``NullObserver``.

With a ``HelloGate`` (``collector.trust.gate``), every hello passes the trust
checks first: hello budget, node key (TOFU), new-node budget per agent token,
then, for a new node on a full table, the eviction of a junk or long-offline
node (``choose_victim``) before the cache would answer 4503. A key that proved
the node id replaces the node's older connection, whatever its instance id;
the hello's ack never claims more than the agent's own ``newest_seq``.

Not here: the protocol rules (``collector.ingest_session``), the node state
(``collector.cache``) and the trust rules (``collector.trust``). Pure: no I/O,
no clock but the wall clock passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from collector.cache import NodeCache
from collector.changes import Change, HeartbeatResult
from collector.trust.gate import NO_TOKEN_LABEL, HelloGate
from collector.trust.identity import AcceptKind
from collector.trust.nodetable import EvictionCandidate, choose_victim
from collector.trust.refusal import Refusal
from collector.trust.sanity import hello_ack_seq
from shared.errors import ProtocolError
from shared.messages import Heartbeat, Hello


class IngestObserver(Protocol):
    """What a ``CachePort`` reports to its shell: changes to fan out, connections to drop, heartbeats to count."""

    def hello_accepted(self, hello: Hello, ack_seq: int) -> None:
        """The cache took the hello: the connection now holds ``hello.node_id``."""
        ...

    def changed(self, changes: list[Change]) -> None:
        """Publish ``changes`` to subscribers."""
        ...

    def replaced(self, conn: int) -> None:
        """Abort connection ``conn``: a newer connection of the same agent instance took its node."""
        ...

    def heartbeat_applied(self, result: HeartbeatResult, now: float, heartbeat: Heartbeat) -> None:
        """Count one heartbeat received at ``now`` and publish ``result.changes`` (one call: this runs per heartbeat).

        ``result`` is the cache's (``current``, with the node's ``record``); ``heartbeat`` is the sample
        itself: when the changes say it is the node's newest (``ChangeKind.SAMPLE``) and it is no
        duplicate, alert rules judge it.
        """
        ...


class NullObserver:
    """An observer that ignores everything: for in-memory pairs with no subscribers."""

    def hello_accepted(self, hello: Hello, ack_seq: int) -> None:
        """Nobody to tell."""

    def changed(self, changes: list[Change]) -> None:
        """Nobody to publish to."""

    def replaced(self, conn: int) -> None:
        """The replaced session finds out at its next heartbeat (``Drop``)."""

    def heartbeat_applied(self, result: HeartbeatResult, now: float, heartbeat: Heartbeat) -> None:
        """Nothing counts."""


class CachePort:
    """An ``IngestPort`` over a ``NodeCache``: connection ``conn``'s hello, heartbeats and close."""

    __slots__ = ("_applied", "_apply", "_observer", "cache", "conn", "gate", "label", "node_id", "peer", "wall_clock")

    def __init__(
        self,
        cache: NodeCache,
        conn: int,
        wall_clock: Callable[[], float],
        observer: IngestObserver | None = None,
        *,
        gate: HelloGate | None = None,
        peer: str = "",
        label: str = NO_TOKEN_LABEL,
    ) -> None:
        """``gate`` checks each hello (None: no trust checks); ``peer`` is for log lines, ``label`` names the token."""
        self.cache = cache
        self.conn = conn
        self.wall_clock = wall_clock
        self.node_id: str | None = None
        self.gate = gate
        self.peer = peer
        self.label = label
        self._observer: IngestObserver = observer if observer is not None else NullObserver()
        # Bound once: a heartbeat then costs no attribute look-ups to reach them.
        self._apply = cache.heartbeat
        self._applied = self._observer.heartbeat_applied

    def hello(self, hello: Hello, now: float) -> int:
        """Check the hello's trust, register it in the cache, abort the connection it replaces."""
        cache, wall, gate = self.cache, self.wall_clock(), self.gate
        verified = first_use = False
        if gate is not None:
            known = hello.node_id in cache
            if not known and len(gate.identity) >= gate.identity.max_records:
                self._prune_keys(gate)
            decision = gate.admit(
                hello.node_id, hello.node_credential, known=known, peer=self.peer, label=self.label, now=now, wall=wall
            )
            if isinstance(decision, Refusal):
                raise decision.error()
            verified, first_use = decision.verified, decision.kind is AcceptKind.FIRST_USE
            if not known and len(cache) >= cache.max_nodes:
                self._evict(gate, now)
        try:
            result = cache.hello(hello, self.conn, now, wall, verified=verified)
        except ProtocolError:
            if first_use and gate is not None:
                gate.identity.forget(hello.node_id)  # a refused hello claims nothing
            raise
        self.node_id = hello.node_id
        ack_seq = hello_ack_seq(result.ack_seq, hello.newest_seq)  # never above what the agent has taken
        if result.replaced_conn is not None:
            self._observer.replaced(result.replaced_conn)
        self._observer.hello_accepted(hello, ack_seq)
        self._observer.changed(result.changes)
        return ack_seq

    def _prune_keys(self, gate: HelloGate) -> None:
        """A full key table drops the records of node ids the cache no longer holds (``--forget-after`` removed them).

        Without this, junk ids registered at the new-node rate would fill the table for good, and every
        new keyed node would get 4503. O(n), run only for a new node on a full key table.
        """
        for record in gate.identity.records():
            if record.node_id not in self.cache:
                gate.identity.forget(record.node_id)

    def _evict(self, gate: HelloGate, now: float) -> None:
        """Make room for a new node: drop a junk or long-offline node, with its key; none: the cache says 4503."""
        candidates = (
            EvictionCandidate(
                node_id=n.node_id,
                connected=n.conn is not None,
                state=n.state,
                heartbeated=n.last_seq > 0 or n.last_sample_frame is not None or n.last_sample_model is not None,
                last_heard=n.last_heard,
                offline_since=n.offline_since,
                samples=len(n.history),
            )
            for n in self.cache.nodes()
        )
        victim = choose_victim(candidates, now)
        if victim is not None:
            gate.identity.forget(victim)
            self._observer.changed(self.cache.forget(victim))

    def heartbeat(self, heartbeat: Heartbeat, frame: bytes, now: float) -> int | None:
        """Apply one heartbeat; None once another connection holds the node."""
        # node_id is set: the session sends heartbeats only after a hello ("" never matches a node).
        result = self._apply(self.node_id or "", self.conn, heartbeat, now, self.wall_clock(), frame=frame)
        if not result.current:
            return None
        self._applied(result, now, heartbeat)
        return result.ack_seq

    def closed(self, clean: bool, now: float) -> None:
        """Tell the cache the connection ended (a clean close makes the node offline at once)."""
        if self.node_id is not None:
            self._observer.changed(
                self.cache.close(self.node_id, self.conn, clean=clean, now=now, wall=self.wall_clock())
            )
