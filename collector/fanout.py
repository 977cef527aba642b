"""Per-subscriber buffers of what changed since its last update: latest state per node, not a queue.

Publishing a change is a dict update per subscriber, so ingest never waits on
a subscriber; a subscriber's own send task drains its buffer into one Update
at most every flush interval. A node that changes ten times between two
flushes is sent once (the ten changes are "coalesced").

Not here: sockets, tasks or encoding (``collector.app`` owns the send task).
"""

from __future__ import annotations

from collections.abc import Iterable

from collector import wire
from collector.cache import NodeCache, NodeRecord
from collector.changes import REMOVED_BIT, Change, ChangeKind
from shared.messages import Update


class PendingUpdates:
    """What one subscriber has not been sent yet, keyed by node id."""

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
