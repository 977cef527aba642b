"""The fan-out to viewers: one buffer of what changed, packed once per flush, the same bytes queued to everyone.

``Fanout.changed`` merges every published change into one ``PendingUpdates`` (latest state per node,
not a queue) and drops the node's cached snapshot parts. Once per flush interval ``Fanout.flush``
drains it into one msgpack ``update`` and, when a ``?format=json`` subscriber is there, one JSON text
of the same bytes, and puts that same object in every subscriber's ``Outbox``. So a flush costs one
encoding per format whatever the number of viewers (issue 13, finding 12a: 50 subscribers each
packing their own copy took the collector to 96 % CPU); websockets' ``broadcast`` makes the same
choice, and for the same reason never waits for the slowest client.

An ``Outbox`` counts the frames waiting in it and the bytes the socket has not sent yet
(``transport.get_write_buffer_size``). Past ``FanoutLimits.lag_bytes`` its subscriber *lags*: it
gets no more shared frames, the flushes' changes merge into its own ``PendingUpdates`` instead
(latest kind per node, so bounded by the fleet), and once it has taken what was queued it is sent
the latest state of exactly those nodes (``Fanout.lag_parts``, joined from the snapshot cache's
per-node parts), then rejoins the shared stream. So a viewer that reads, but slower than the fleet,
gets fewer and coarser updates and always catches up. A subscriber that does not read at all is cut
(4429) once ``max_unsent_bytes`` of updates passed it with no byte leaving its socket (finding 12c),
long before a send times out.

Not here: sockets, tasks and history requests (``collector.subscribe``, ``collector.history_requests``),
the bytes (``collector.wire``), the snapshot's parts (``collector.snapshot``).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from collector import wire
from collector.cache import NodeCache, NodeRecord
from collector.changes import REMOVED_BIT, Change, ChangeKind
from collector.snapshot import EntryParts, PartLimits, SnapshotCache, latest_entries, split
from shared.limits import MAX_NODES_PER_MESSAGE
from shared.messages import Update

# Viewers at once: each costs a socket, its snapshot and its share of each flush's writes; 256 is far
# more than operators watching one fleet, and few enough that 256 stalled ones are bounded (below).
DEFAULT_MAX_SUBSCRIBERS = 256
# Updates that may pass a lagging subscriber with no byte leaving its socket: ~2 s of a 10,000-node fleet's
# full churn at 1 Hz (~8 MB/s), ~10 s at 2,000 nodes; a viewer that read nothing meanwhile is not reading.
DEFAULT_MAX_UNSENT_BYTES = 16 * 1024 * 1024
# Unsent bytes past which a subscriber lags (gets coalesced updates, not every frame): a quarter second of
# a 10,000-node fleet's full churn, 1 s at 2,000 nodes; a viewer that keeps up never holds this much.
DEFAULT_LAG_BYTES = 2 * 1024 * 1024
# What a skipped frame counts per node when every subscriber lags and none is packed: an ordinary entry.
_ENTRY_BYTES = 850


@dataclass(frozen=True, slots=True)
class FanoutLimits:
    """The fan-out's bounds: ``--max-subscribers``, and constants a test may lower to see them act."""

    max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS
    max_unsent_bytes: int = DEFAULT_MAX_UNSENT_BYTES
    lag_bytes: int = DEFAULT_LAG_BYTES  # used as at most a quarter of max_unsent_bytes
    snapshot_parts: PartLimits = field(default_factory=PartLimits)

    def lag_at(self) -> int:
        """The unsent bytes past which a subscriber lags: below the cut's bound, so it lags before it is cut."""
        return min(self.lag_bytes, self.max_unsent_bytes // 4)


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

    def merge(self, other: PendingUpdates) -> None:
        """Add what ``other`` holds (later changes), as ``add`` would have: a lagging subscriber's own buffer."""
        nodes, removed = self._nodes, self._removed
        for node_id in other._removed:
            nodes.pop(node_id, None)
            removed.add(node_id)
        for node_id, kind in other._nodes.items():
            # Forgotten, then back before we told the viewer: it needs facts again.
            back = ChangeKind.FACTS if node_id in removed else ChangeKind(0)
            removed.discard(node_id)
            nodes[node_id] = kind | back | nodes.get(node_id, ChangeKind(0))

    def take(self) -> PendingUpdates:
        """Move everything pending into a new buffer, leaving this one empty."""
        taken = PendingUpdates()
        taken._nodes, taken._removed = self._nodes, self._removed
        self._nodes, self._removed = {}, set()
        return taken

    def clear(self) -> None:
        """Forget everything pending (nobody is subscribed to be told)."""
        self._nodes, self._removed = {}, set()

    def take_frame(self, cache: NodeCache, wall: float) -> bytes | None:
        """``take_update`` packed as one msgpack frame, built from cached parts with no model per node."""
        if not self:
            return None
        records, removed = self.drain(cache)
        return wire.update_frame(wall, [wire.entry_frame(record, kind) for record, kind in records], removed)

    def take_update(self, cache: NodeCache, wall: float) -> Update | None:
        """Empty the buffer into one Update built from the cache's current state; None when nothing is pending."""
        if not self:
            return None
        records, removed = self.drain(cache)
        return Update(
            server_time_at=wall, nodes=[wire.entry(record, kind) for record, kind in records], removed=removed
        )

    def drain(self, cache: NodeCache) -> tuple[list[tuple[NodeRecord, ChangeKind]], list[str]]:
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
    """Frames waiting for one subscriber's send loop, shared with every other subscriber; or, lagging, what changed."""

    __slots__ = ("_frames", "_in_socket", "_sent_high", "behind", "lag_at", "max_unsent_bytes", "queued_bytes",
                 "skipped_bytes", "written_bytes")  # fmt: skip

    def __init__(self, max_unsent_bytes: int, in_socket: Callable[[], int], lag_at: int | None = None) -> None:
        """``in_socket``: the bytes written to the socket and not sent yet (the transport's write buffer)."""
        self.max_unsent_bytes = max_unsent_bytes
        self.lag_at = max_unsent_bytes if lag_at is None else lag_at
        self._in_socket = in_socket
        self._frames: deque[tuple[bytes | str, int]] = deque()  # (frame, nodes in it)
        self.queued_bytes = 0
        self.behind: PendingUpdates | None = None  # lagging: the nodes changed since it stopped getting frames
        self.written_bytes = 0  # every frame handed to its socket (``wrote``), to see bytes leave it
        self._sent_high = 0  # the most bytes seen to have left its socket
        self.skipped_bytes = 0  # shared frames not queued while lagging, since a byte last left its socket

    def __len__(self) -> int:
        return len(self._frames)

    def unsent_bytes(self) -> int:
        """Bytes this subscriber has not been sent: the frames queued here and what its socket holds.

        Its snapshot's parts are not counted: they are sent one at a time, each within the send
        timeout, and a fleet's snapshot may well be bigger than the bound (it must still arrive).
        """
        return self.queued_bytes + self._in_socket()

    def wrote(self, frame: bytes | str) -> None:
        """Note a frame handed to the socket (JSON text is ASCII: its length is its bytes)."""
        self.written_bytes += len(frame)

    def lags(self) -> bool:
        """Whether this flush's frame should be skipped (and its changes merged): over ``lag_at``, or lagging."""
        in_socket = self._in_socket()
        sent = self.written_bytes - in_socket
        if sent > self._sent_high:  # bytes left its socket since the last flush: it reads
            self._sent_high, self.skipped_bytes = sent, 0
        if self.behind is None and self.queued_bytes + in_socket > self.lag_at:
            self.behind = PendingUpdates()
        return self.behind is not None

    def skip(self, frame_bytes: int) -> bool:
        """Count a frame not queued (its changes were merged in ``behind``); False when it is not reading (cut it).

        Not reading: ``max_unsent_bytes`` of frames passed it and no byte left its socket. What it
        holds meanwhile is bounded apart from that: ``lag_at``, one frame, its socket, a set of ids.
        """
        self.skipped_bytes += frame_bytes
        return self.skipped_bytes <= self.max_unsent_bytes

    def put(self, frame: bytes | str, nodes: int) -> None:
        """Queue ``frame`` (the subscriber is under ``lag_at``: at most this frame passes it)."""
        self._frames.append((frame, nodes))
        self.queued_bytes += len(frame)

    def pop(self) -> bytes | str | None:
        """The oldest queued frame, or None."""
        if not self._frames:
            return None
        frame, _ = self._frames.popleft()
        self.queued_bytes -= len(frame)
        return frame

    def clear(self) -> int:
        """Drop every queued frame and change; return how many node entries they held (counted as dropped)."""
        nodes = sum(count for _, count in self._frames) + len(self.behind or ())
        self._frames.clear()
        self.queued_bytes = 0
        self.behind = None
        return nodes


class FanoutSubscriber(Protocol):
    """What the fan-out needs of a subscriber (``collector.subscribe.Subscriber``)."""

    json_format: bool  # whether it gets JSON text frames
    outbox: Outbox  # where its frames wait
    wake: asyncio.Event  # set when something is queued for it


@dataclass(slots=True)
class FanoutStats:
    """What the fan-out did, for ``/api/v1/health``'s ``fanout`` block."""

    flushes: int = 0
    frames_packed: int = 0  # encodings: one per format per flush, whatever the number of subscribers
    frames_queued: int = 0  # the same frames, once per subscriber
    cut_unsent: int = 0  # subscribers cut for unsent bytes over the bound, or not reading while lagging
    lagged: int = 0  # times a subscriber passed ``lag_at`` and stopped getting the shared frames
    coalesced_updates: int = 0  # updates built for one lagging subscriber from the latest state
    rejoined: int = 0  # times a lagging subscriber caught up and got the shared frames again
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
        """Pack what is pending once per format, queue it to every subscriber; return those now over their bound.

        A lagging subscriber gets the changes merged into its own buffer instead of the frame.
        """
        subscribers = list(subscribers)
        if not subscribers:
            self.pending.clear()
            return []
        if not self.pending:
            return []
        batch = self.pending.take()
        nodes = len(batch)
        lagging = [self._lags(sub.outbox, batch) for sub in subscribers]  # before packing: it drains the batch
        frame = None if all(lagging) else batch.take_frame(self.cache, wall)
        skipped = nodes * _ENTRY_BYTES if frame is None else len(frame)
        self.stats.flushes += 1
        self.stats.frames_packed += frame is not None
        self.stats.frames_queued += lagging.count(False)
        text: str | None = None
        over: list[FanoutSubscriber] = []
        for sub, lags in zip(subscribers, lagging, strict=True):
            sub.wake.set()
            if lags:
                if not sub.outbox.skip(skipped):
                    over.append(sub)
                continue
            assert frame is not None  # packed: someone does not lag
            payload: bytes | str = frame
            if sub.json_format:
                if text is None:
                    text = wire.json_text(frame)
                    self.stats.frames_packed += 1
                payload = text
            sub.outbox.put(payload, nodes)
        return over

    def _lags(self, outbox: Outbox, batch: PendingUpdates) -> bool:
        """Whether ``outbox`` lags; if it does, ``batch`` is merged into what it missed."""
        started = outbox.behind is None
        if not outbox.lags():
            return False
        assert outbox.behind is not None
        outbox.behind.merge(batch)
        self.stats.lagged += started
        return True

    def lag_parts(self, sub: FanoutSubscriber, wall: float) -> Iterator[bytes | str]:
        """For a lagging subscriber that has taken every queued frame: the latest state of what it missed.

        In parts of at most ``lag_at`` bytes joined from the snapshot cache's per-node parts (packed
        once per change of a node, whoever asks). When one part holds it all, it rejoins the shared
        stream in the same step; otherwise it stays lagging and the next call brings what changed
        meanwhile. No node goes back: every part is newer than everything sent to it before.
        """
        out = sub.outbox
        if out.behind is None or len(out):
            return
        batch, out.behind = out.behind, PendingUpdates()
        records, removed = batch.drain(self.cache)
        runs = split(latest_entries(self.snapshots, records), PartLimits(out.lag_at, MAX_NODES_PER_MESSAGE))
        run: list[EntryParts] | None = next(runs)
        following = next(runs, None)
        if following is None:
            out.behind = None
            self.stats.rejoined += 1
            if not run and not removed:
                return
        while run is not None:
            frame = wire.update_frame(wall, [entry.join() for entry in run], removed)
            removed = []  # the nodes gone come with the first part: no entry of theirs is in any part
            self.stats.coalesced_updates += 1
            yield wire.json_text(frame) if sub.json_format else frame
            run, following = following, next(runs, None) if following is not None else None
