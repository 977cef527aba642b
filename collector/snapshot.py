"""A subscriber's first view of the fleet: captured at once from per-node cached parts, sent in bounded parts.

``SnapshotCache`` keeps, per node, the packed parts of its snapshot entry (status and
recent history, packed by us; facts and last sample, referenced where the record keeps
them packed). A change of a node drops its parts (``forget``, fed by the fan-out with
every published change), so a connect/close loop re-packs only the nodes that changed
since the previous snapshot, not the whole fleet each time (issue 13, finding 12b).

``capture`` takes every node's parts at one instant, with no await: the caller registers
the subscriber in the same step, so every later change reaches it as an update.
``snapshot_frames`` then joins those parts into frames lazily, one part at a time, each
of at most ``max_bytes`` (or a single node larger than that) and ``max_nodes`` nodes
(docs/protocol.md 4.2.1): the first is the ``snapshot``, the rest are ``update``s whose
entries carry ``history``. No frame is bigger than a viewer's limit for a fleet of any
size (finding 6: 4,500 maximal nodes were one 277 MiB frame), and a viewer that does not
read holds one part in its socket, not the fleet.

Not here: which subscribers get what (``collector.fanout``), sockets (``collector.subscribe``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from collector import wire
from collector.cache import NodeCache, NodeRecord
from collector.changes import Change

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


class EntryParts(NamedTuple):
    """One node's snapshot entry, packed in parts; ``entry_parts`` joins them into the ``NodeEntry`` map."""

    status: bytes
    facts: bytes
    sample: bytes | None
    history: bytes

    def size(self) -> int:
        """The bytes of the joined entry, within ``_ENTRY_OVERHEAD``."""
        sample = 0 if self.sample is None else len(self.sample)
        return len(self.status) + len(self.facts) + sample + len(self.history) + _ENTRY_OVERHEAD

    def join(self) -> bytes:
        """The packed ``NodeEntry``."""
        return wire.entry_parts(self.status, self.facts, self.sample, self.history)


class SnapshotCache:
    """Each node's snapshot entry parts, packed once per change of the node."""

    def __init__(self, history_points: int) -> None:
        self._history_points = history_points
        self._parts: dict[str, EntryParts] = {}
        self.packed = 0  # entries packed since start: a connect re-packs only what changed since the last one

    def __len__(self) -> int:
        return len(self._parts)

    def forget(self, changes: Iterable[Change]) -> None:
        """Drop the parts of every node in ``changes``: they are packed again at the next capture."""
        parts = self._parts
        for change in changes:
            parts.pop(change.node_id, None)

    def capture(self, cache: NodeCache) -> list[EntryParts]:
        """Every node's parts as of now, packing those that changed since they were last packed."""
        parts = self._parts
        captured: list[EntryParts] = []
        for record in cache.nodes():
            entry = parts.get(record.node_id)
            if entry is None:
                entry = parts[record.node_id] = self._pack(record)
            captured.append(entry)
        if len(parts) > len(captured):  # forgotten nodes whose removal nobody captured since
            alive = {record.node_id for record in cache.nodes()}
            for node_id in [n for n in parts if n not in alive]:
                del parts[node_id]
        return captured

    def _pack(self, record: NodeRecord) -> EntryParts:
        self.packed += 1
        return EntryParts(
            status=wire.pack(wire.status_wire(record)),
            facts=wire.facts_frame(record),
            sample=wire.sample_frame(record),
            history=wire.pack(record.history.to_wire(self._history_points)),
        )


def split(captured: list[EntryParts], max_bytes: int, max_nodes: int) -> Iterator[list[EntryParts]]:
    """``captured`` in runs of at most ``max_nodes`` entries and ``max_bytes`` (a run holds at least one entry)."""
    run: list[EntryParts] = []
    size = _FRAME_OVERHEAD
    for entry in captured:
        entry_size = entry.size()
        if run and (size + entry_size > max_bytes or len(run) >= max_nodes):
            yield run
            run, size = [], _FRAME_OVERHEAD
        run.append(entry)
        size += entry_size
    if run or not captured:
        yield run  # an empty fleet is still one (empty) snapshot


def snapshot_frames(
    wall: float, captured: list[EntryParts], max_bytes: int, max_nodes: int, *, json_format: bool
) -> Iterator[bytes | str]:
    """The snapshot in parts: one ``snapshot``, then ``update``s with ``history``; each frame built when asked for."""
    for index, run in enumerate(split(captured, max_bytes, max_nodes)):
        entries = [entry.join() for entry in run]
        frame = wire.snapshot_parts(wall, entries) if index == 0 else wire.update_frame(wall, entries, ())
        yield wire.json_text(frame) if json_format else frame
