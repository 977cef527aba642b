"""The fan-out to viewers: one buffer of what changed, packed once per flush, the same bytes queued to everyone.

``Fanout.changed`` merges every published change into one ``PendingUpdates`` (latest
state per node, not a queue) and drops the node's cached snapshot parts. Once per flush
interval ``Fanout.flush`` drains it into one msgpack ``update`` and, when a ``?format=json``
subscriber is there, one JSON text of the same bytes, and puts that same object in every
subscriber's ``Outbox``. So a flush costs one encoding per format whatever the number of
viewers (issue 13, finding 12a: 50 subscribers each packing their own copy took the
collector to 96 % CPU); websockets' ``broadcast`` makes the same choice, and for the same
reason never waits for the slowest client.

An ``Outbox`` is bounded in bytes, counting the frames waiting in it and the bytes the
socket has not sent yet (``transport.get_write_buffer_size``): a subscriber that stops
reading passes the bound within a few flushes and is cut (4429), instead of holding the
fleet's updates until a send times out (finding 12c).

Not here: sockets and tasks (``collector.subscribe``), the bytes (``collector.wire``),
the snapshot's parts (``collector.snapshot``).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from collector import wire
from collector.cache import NodeCache, NodeRecord
from collector.changes import REMOVED_BIT, Change, ChangeKind
from collector.snapshot import PartLimits, SnapshotCache
from shared.messages import Update

# Viewers at once: each costs a socket, its snapshot and its share of each flush's writes; 256 is far
# more than operators watching one fleet, and few enough that 256 stalled ones are bounded (below).
DEFAULT_MAX_SUBSCRIBERS = 256
# Unsent bytes one subscriber may have: ~2 s of a 10,000-node fleet's full churn at 1 Hz (~8 MB/s of
# updates), ~10 s at 2,000 nodes; a viewer that has not read that much is not coming back in time.
DEFAULT_MAX_UNSENT_BYTES = 16 * 1024 * 1024
# Plain history requests answered per subscriber: a viewer asks one per node it opens (a click); 10/s
# with bursts of 20 never delays a person, and bounds what a flood costs (finding 16a: 42 % CPU).
HISTORY_REQUESTS_PER_S = 10.0
HISTORY_REQUEST_BURST = 20
# Requests of any kind a subscriber may send: past 50/s (bursts of 200) it is flooding, and is closed
# with 4430 ``rate_exceeded`` (docs/protocol.md 4.2); even a script clicking every node stays under it.
REQUESTS_IN_PER_S = 50.0
REQUESTS_IN_BURST = 200


@dataclass(frozen=True, slots=True)
class FanoutLimits:
    """The fan-out's bounds: ``--max-subscribers``, and constants a test may lower to see them act."""

    max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS
    max_unsent_bytes: int = DEFAULT_MAX_UNSENT_BYTES
    snapshot_parts: PartLimits = field(default_factory=PartLimits)


class PendingUpdates:
    """What has not been sent yet, keyed by node id: the latest kind of change per node."""

    def __init__(self) -> None:
        self._nodes: dict[str, ChangeKind] = {}
        self._removed: set[str] = set()

    def __len__(self) -> int:
        return len(self._nodes) + len(self._removed)

    def add(self, changes: Iterable[Change]) -> int:
        """Merge ``changes``; return how many merged into a change already pending (coalesced)."""
        coalesced = 0
        for change in changes:
            if change.kind.value & REMOVED_BIT:  # an int test: IntFlag's & costs ~0.5 us, per heartbeat
                self._nodes.pop(change.node_id, None)
                self._removed.add(change.node_id)
                continue
            if change.node_id in self._removed:
                # Forgotten, then back before we told the viewer: it needs facts again.
                self._removed.discard(change.node_id)
                self._nodes[change.node_id] = change.kind | ChangeKind.FACTS
                continue
            previous = self._nodes.get(change.node_id)
            if previous is None:
                self._nodes[change.node_id] = change.kind
            else:
                self._nodes[change.node_id] = previous | change.kind
                coalesced += 1
        return coalesced

    def clear(self) -> None:
        """Forget everything pending (nobody is subscribed to be told)."""
        self._nodes, self._removed = {}, set()

    def take_frame(self, cache: NodeCache, wall: float) -> bytes | None:
        """``take_update`` packed as one msgpack frame, built from cached parts with no model per node."""
        if not self:
            return None
        records, removed = self._drain(cache)
        return wire.update_frame(wall, [wire.entry_frame(record, kind) for record, kind in records], removed)

    def take_update(self, cache: NodeCache, wall: float) -> Update | None:
        """Empty the buffer into one Update built from the cache's current state; None when nothing is pending."""
        if not self:
            return None
        records, removed = self._drain(cache)
        return Update(
            server_time_at=wall, nodes=[wire.entry(record, kind) for record, kind in records], removed=removed
        )

    def _drain(self, cache: NodeCache) -> tuple[list[tuple[NodeRecord, ChangeKind]], list[str]]:
        """Empty the buffer: pending nodes still in the cache, and the sorted ids of those gone."""
        nodes, removed = self._nodes, self._removed
        self._nodes, self._removed = {}, set()
        records = []
        for node_id, kind in nodes.items():
            record = cache.get(node_id)
            if record is None:
                removed.add(node_id)
            else:
                records.append((record, kind))
        return records, sorted(removed)


class Outbox:
    """Frames waiting for one subscriber's send loop, shared with every other subscriber; bounded in bytes."""

    __slots__ = ("_frames", "_in_socket", "max_unsent_bytes", "queued_bytes")

    def __init__(self, max_unsent_bytes: int, in_socket: Callable[[], int]) -> None:
        """``in_socket``: the bytes written to the socket and not sent yet (the transport's write buffer)."""
        self.max_unsent_bytes = max_unsent_bytes
        self._in_socket = in_socket
        self._frames: deque[tuple[bytes | str, int]] = deque()  # (frame, nodes in it)
        self.queued_bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    def unsent_bytes(self) -> int:
        """Bytes this subscriber has not been sent: the frames queued here and what its socket holds.

        Its snapshot's parts are not counted: they are sent one at a time, each within the send
        timeout, and a fleet's snapshot may well be bigger than the bound (it must still arrive).
        """
        return self.queued_bytes + self._in_socket()

    def put(self, frame: bytes | str, nodes: int) -> bool:
        """Queue ``frame``; False when the subscriber's unsent bytes are now over the bound (cut it)."""
        self._frames.append((frame, nodes))
        self.queued_bytes += len(frame)
        return self.unsent_bytes() <= self.max_unsent_bytes

    def pop(self) -> bytes | str | None:
        """The oldest queued frame, or None."""
        if not self._frames:
            return None
        frame, _ = self._frames.popleft()
        self.queued_bytes -= len(frame)
        return frame

    def clear(self) -> int:
        """Drop every queued frame; return how many node entries they held (counted as dropped)."""
        nodes = sum(count for _, count in self._frames)
        self._frames.clear()
        self.queued_bytes = 0
        return nodes


class FanoutSubscriber(Protocol):
    """What the fan-out needs of a subscriber (``collector.subscribe.Subscriber``)."""

    @property
    def json_format(self) -> bool:
        """Whether it gets JSON text frames."""

    @property
    def outbox(self) -> Outbox:
        """Where its frames wait."""

    @property
    def wake(self) -> asyncio.Event:
        """Set when something is queued for it."""


@dataclass(slots=True)
class FanoutStats:
    """What the fan-out did, for ``/api/v1/health``'s ``fanout`` block."""

    flushes: int = 0
    frames_packed: int = 0  # encodings: one per format per flush, whatever the number of subscribers
    frames_queued: int = 0  # the same frames, once per subscriber
    cut_unsent: int = 0  # subscribers cut for unsent bytes over the bound
    refused_full: int = 0  # subscribe requests answered 503 at --max-subscribers


class Fanout:
    """One pending buffer and one snapshot cache for every subscriber; each flush packs once per format."""

    def __init__(self, cache: NodeCache, limits: FanoutLimits, history_points: int) -> None:
        self.cache = cache
        self.limits = limits
        self.pending = PendingUpdates()
        self.snapshots = SnapshotCache(history_points)
        self.stats = FanoutStats()
        self.wake = asyncio.Event()  # set when changes are pending: the flush loop's cue
        self.admitted = 0  # subscribe requests past the cap check and not finished yet
        # Loop time of the last flush; a new subscriber's snapshot counts as one, so that viewer, too,
        # gets at most one message per flush interval (docs/protocol.md 4.2, step 3).
        self.last_flush_at = -math.inf

    def changed(self, changes: list[Change], subscribed: bool) -> int:
        """Note ``changes``: drop their snapshot parts, and queue them if anyone is subscribed; return coalesced."""
        self.snapshots.forget(changes)
        if not subscribed:
            return 0
        self.wake.set()
        return self.pending.add(changes)

    def flush(self, subscribers: Iterable[FanoutSubscriber], wall: float) -> list[FanoutSubscriber]:
        """Pack what is pending once per format, queue it to every subscriber; return those now over their bound."""
        subscribers = list(subscribers)
        if not subscribers:
            self.pending.clear()
            return []
        nodes = len(self.pending)
        frame = self.pending.take_frame(self.cache, wall)
        if frame is None:
            return []
        self.stats.flushes += 1
        self.stats.frames_packed += 1
        text: str | None = None
        over: list[FanoutSubscriber] = []
        for sub in subscribers:
            payload: bytes | str = frame
            if sub.json_format:
                if text is None:
                    text = wire.json_text(frame)
                    self.stats.frames_packed += 1
                payload = text
            if not sub.outbox.put(payload, nodes):
                over.append(sub)
            sub.wake.set()
        self.stats.frames_queued += len(subscribers)
        return over
