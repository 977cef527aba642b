"""The ``IngestPort`` over a ``NodeCache``: where an ``IngestSession`` delivers one connection's messages.

``CachePort`` turns a session's hello, heartbeats and close into ``NodeCache``
calls for one connection id, and reports what came of them to an
``IngestObserver``: the aiohttp shell fans changes out, aborts replaced
connections and counts heartbeats; an in-memory pair passes ``NullObserver``.

Not here: the protocol rules (``collector.ingest_session``) and the node state
(``collector.cache``). Pure: no I/O, no clock but the wall clock passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from collector.cache import NodeCache
from collector.changes import Change
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

    def heartbeat_applied(self, changes: list[Change], duplicate: bool, now: float) -> None:
        """Count one heartbeat received at ``now`` and publish ``changes`` (one call: this runs per heartbeat)."""
        ...


class NullObserver:
    """An observer that ignores everything: for in-memory pairs with no subscribers."""

    def hello_accepted(self, hello: Hello, ack_seq: int) -> None:
        """Nobody to tell."""

    def changed(self, changes: list[Change]) -> None:
        """Nobody to publish to."""

    def replaced(self, conn: int) -> None:
        """The replaced session finds out at its next heartbeat (``Drop``)."""

    def heartbeat_applied(self, changes: list[Change], duplicate: bool, now: float) -> None:
        """Nothing counts."""


class CachePort:
    """An ``IngestPort`` over a ``NodeCache``: connection ``conn``'s hello, heartbeats and close."""

    __slots__ = ("_applied", "_apply", "_observer", "cache", "conn", "node_id", "wall_clock")

    def __init__(
        self, cache: NodeCache, conn: int, wall_clock: Callable[[], float], observer: IngestObserver | None = None
    ) -> None:
        self.cache = cache
        self.conn = conn
        self.wall_clock = wall_clock
        self.node_id: str | None = None
        self._observer: IngestObserver = observer if observer is not None else NullObserver()
        # Bound once: a heartbeat then costs no attribute look-ups to reach them.
        self._apply = cache.heartbeat
        self._applied = self._observer.heartbeat_applied

    def hello(self, hello: Hello, now: float) -> int:
        """Register the hello in the cache; abort the connection it replaces."""
        result = self.cache.hello(hello, self.conn, now, self.wall_clock())
        self.node_id = hello.node_id
        if result.replaced_conn is not None:
            self._observer.replaced(result.replaced_conn)
        self._observer.hello_accepted(hello, result.ack_seq)
        self._observer.changed(result.changes)
        return result.ack_seq

    def heartbeat(self, heartbeat: Heartbeat, frame: bytes, now: float) -> int | None:
        """Apply one heartbeat; None once another connection holds the node."""
        # node_id is set: the session sends heartbeats only after a hello ("" never matches a node).
        result = self._apply(self.node_id or "", self.conn, heartbeat, now, self.wall_clock(), frame=frame)
        if not result.current:
            return None
        self._applied(result.changes, result.duplicate, now)
        return result.ack_seq

    def closed(self, clean: bool, now: float) -> None:
        """Tell the cache the connection ended (a clean close makes the node offline at once)."""
        if self.node_id is not None:
            self._observer.changed(
                self.cache.close(self.node_id, self.conn, clean=clean, now=now, wall=self.wall_clock())
            )
