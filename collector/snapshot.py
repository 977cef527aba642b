"""A subscriber's first view of the fleet: packed from per-node cached parts, sent in bounded parts.

``SnapshotCache`` keeps, per node, the packed parts of its snapshot entry (status and
recent history, packed by us; facts and last sample, referenced where the record keeps
them packed). A change of a node drops its parts (``forget``, fed by the fan-out with
every published change), so a connect/close loop re-packs only the nodes that changed
since the previous snapshot, not the whole fleet each time (issue 13, finding 12b).

``SnapshotSend`` is one viewer's snapshot: the node ids of the instant it connected, sent in
parts of at most ``PartLimits.max_bytes`` (or one node larger than that) and ``max_nodes``
nodes (docs/protocol.md 4.2.1), each packed from the nodes' current parts when it is due: the
first is the ``snapshot``, the rest are ``update``s whose entries carry ``history``.
Its ``catch_up``, built in the same step as the viewer is registered for updates, brings what
changed meanwhile. No frame is bigger than a viewer's limit for a fleet of any size
(finding 6: 4,500 maximal nodes were one 277 MiB frame), and a viewer that does not read
holds one part in its socket and a list of ids, not the fleet. ``latest_entries`` gives the
same parts, without history, to a lagging subscriber's coalesced update (``collector.fanout``).

Not here: which subscribers get what (``collector.fanout``), sockets (``collector.subscribe``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from collector import wire
from collector.cache import NodeCache, NodeRecord
from collector.changes import Change, ChangeKind

# A part is at most this many bytes (unless one node alone is bigger): a maximal node entry is under
# 100 KiB (a 64 KiB heartbeat, its facts and 60 points), so a part still holds a few such nodes, and a
# viewer that stops reading holds at most this much of its snapshot in the collector's socket buffer.
SNAPSHOT_PART_MAX_BYTES = 256 * 1024
# And at most this many nodes: ~1,000 ordinary nodes (~850 bytes each) already make a part of ~850 KiB
# before the byte bound, so the byte bound decides in practice; this keeps one part's decode short.
SNAPSHOT_PART_MAX_NODES = 1_000
# msgpack overhead of one entry map around its parts: the header and the four keys (at most 38 bytes).
_ENTRY_OVERHEAD = 40
# A frame's own header around its entries: type, server_time_at, the keys, the array header (under 64 bytes).
_FRAME_OVERHEAD = 64
_FACTS_BIT = ChangeKind.FACTS.value  # plain int tests, as in ``wire.entry_frame``: this runs per node
_SAMPLE_BIT = ChangeKind.SAMPLE.value


class EntryParts(NamedTuple):
    """One node's snapshot entry, packed in parts; ``entry_parts`` joins them into the ``NodeEntry`` map."""

    status: bytes
    facts: bytes | None  # None only in ``latest_entries`` (facts unchanged), as is history
    sample: bytes | None
    history: bytes | None

    def size(self) -> int:
        """The bytes of the joined entry, within ``_ENTRY_OVERHEAD``."""
        return sum(len(part) for part in self if part is not None) + _ENTRY_OVERHEAD

    def join(self) -> bytes:
        """The packed ``NodeEntry``."""
        return wire.entry_parts(self.status, self.facts, self.sample, self.history)


class SnapshotCache:
    """Each node's snapshot entry parts, packed once per change of the node, with a serial per packing."""

    def __init__(self, history_points: int) -> None:
        self._history_points = history_points
        self._parts: dict[str, tuple[int, EntryParts]] = {}
        self.packed = 0  # entries packed since start (also the serial of the newest): once per node per change

    def __len__(self) -> int:
        return len(self._parts)

    def forget(self, changes: Iterable[Change]) -> None:
        """Drop the parts of every node in ``changes``: they are packed again when next asked for."""
        parts = self._parts
        for change in changes:
            parts.pop(change.node_id, None)

    def parts(self, record: NodeRecord) -> tuple[int, EntryParts]:
        """The node's parts as of now and their serial, packed if the node changed since they were."""
        cached = self._parts.get(record.node_id)
        if cached is None:
            self.packed += 1
            cached = self._parts[record.node_id] = (self.packed, self._pack(record))
        return cached

    def cached(self, node_id: str) -> EntryParts | None:
        """The node's parts if they are packed and current; None otherwise (nothing is packed here)."""
        cached = self._parts.get(node_id)
        return None if cached is None else cached[1]

    def serial(self, node_id: str) -> int | None:
        """The serial of the node's current parts; None when it changed since they were packed."""
        cached = self._parts.get(node_id)
        return None if cached is None else cached[0]

    def _pack(self, record: NodeRecord) -> EntryParts:
        return EntryParts(
            status=wire.pack(wire.status_wire(record)),
            facts=wire.facts_frame(record),
            sample=wire.sample_frame(record),
            history=wire.pack(record.history.to_wire(self._history_points)),
        )


@dataclass(frozen=True, slots=True)
class PartLimits:
    """How big one part may be: ``max_bytes`` of entries (one bigger entry goes alone) and ``max_nodes``."""

    max_bytes: int = SNAPSHOT_PART_MAX_BYTES
    max_nodes: int = SNAPSHOT_PART_MAX_NODES


class SnapshotSend:
    """One viewer's snapshot: the node ids of the capture instant, sent in parts packed as they go out.

    Each part is packed from the nodes' current state when it is due, so a viewer that stops
    reading holds one part and a list of ids, never a copy of the fleet. ``catch_up`` then
    brings the nodes that changed, appeared or went since their part was packed, and must be
    called in the same step as the viewer is registered for updates: together they give the
    current view, and every later change comes as an update.
    """

    def __init__(self, snapshots: SnapshotCache, cache: NodeCache, limits: PartLimits, *, json_format: bool) -> None:
        self._snapshots = snapshots
        self._cache = cache
        self._limits = limits
        self._json_format = json_format
        self._node_ids = [record.node_id for record in cache.nodes()]
        self._sent: dict[str, int] = {}  # node id -> serial of the parts it was sent

    def parts(self, wall: float) -> Iterator[bytes | str]:
        """The ``snapshot``, then a snapshot part (an ``update`` with ``history``) per run; packed lazily."""
        first = True
        for run in split(self._entries(iter(self._node_ids)), self._limits):
            yield self._frame(wall, run, (), snapshot=first)
            first = False

    def catch_up(self, wall: float) -> list[bytes | str]:
        """Parts for every node that changed, appeared or went since its part was packed (often none)."""
        sent = self._sent
        snapshots = self._snapshots
        changed = (r.node_id for r in self._cache.nodes() if snapshots.serial(r.node_id) != sent.get(r.node_id, -1))
        gone = sorted(node_id for node_id in sent if self._cache.get(node_id) is None)
        runs = list(split(self._entries(changed), self._limits))
        if not runs[-1] and not gone:
            return []
        return [
            self._frame(wall, run, gone if i == len(runs) - 1 else (), snapshot=False) for i, run in enumerate(runs)
        ]

    def _entries(self, node_ids: Iterator[str]) -> Iterator[EntryParts]:
        for node_id in node_ids:
            record = self._cache.get(node_id)
            if record is None:
                continue  # forgotten before its part: never sent, nothing to remove
            serial, entry = self._snapshots.parts(record)
            self._sent[node_id] = serial
            yield entry

    def _frame(self, wall: float, run: list[EntryParts], removed: Sequence[str], *, snapshot: bool) -> bytes | str:
        entries = [entry.join() for entry in run]
        frame = wire.snapshot_parts(wall, entries) if snapshot else wire.update_frame(wall, entries, removed)
        return wire.json_text(frame) if self._json_format else frame


def latest_entries(snapshots: SnapshotCache, records: Iterable[tuple[NodeRecord, ChangeKind]]) -> Iterator[EntryParts]:
    """Update entries (no history) of ``records`` from their cached parts: facts and sample where ``kind`` says.

    What a lagging subscriber is sent (``collector.fanout``): current cached parts are reused,
    and a node without them is packed here without its history and not cached. Packing the
    history too (up to 900 points a node) for every node a lagging viewer missed cost the loop
    more than the ingest itself at 10,000 nodes, so one slow viewer slowed every agent's acks.
    """
    for record, kind in records:
        bits = kind.value
        parts = snapshots.cached(record.node_id)
        if parts is not None:
            status, facts, sample = parts.status, parts.facts, parts.sample
        else:
            status = wire.pack(wire.status_wire(record))
            facts = wire.facts_frame(record) if bits & _FACTS_BIT else None
            sample = wire.sample_frame(record) if bits & _SAMPLE_BIT else None
        yield EntryParts(status, facts if bits & _FACTS_BIT else None, sample if bits & _SAMPLE_BIT else None, None)


def split(entries: Iterable[EntryParts], limits: PartLimits) -> Iterator[list[EntryParts]]:
    """``entries`` in runs within ``limits`` (a run holds at least one entry); none gives one empty run."""
    run: list[EntryParts] = []
    size = _FRAME_OVERHEAD
    for entry in entries:
        entry_size = entry.size()
        if run and (size + entry_size > limits.max_bytes or len(run) >= limits.max_nodes):
            yield run
            run, size = [], _FRAME_OVERHEAD
        run.append(entry)
        size += entry_size
    yield run  # the last run; empty only when there were no entries at all
