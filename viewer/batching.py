"""Pure merging of the collector's stream into one batch per UI frame: latest state per node.

The network thread feeds every decoded ``Snapshot``/``Update`` into ``PendingBatch`` and,
about every 100 ms, ``take()``s one ``NodeBatch`` for the UI thread. Merging here keeps
the UI thread's work proportional to the number of *nodes* that changed, not messages.
It holds at most ``max_nodes`` entries: a collector that keeps inventing node ids while
the UI is busy cannot grow it without bound (the overflow is counted in ``refused``).
``split_batch`` cuts a big update batch into slices the UI applies one event-loop turn
apiece (``viewer.link``), so no single apply holds the UI thread for long.
Not here: Qt, asyncio, sockets or timers (the caller decides when to take).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import Final

from shared.messages import Heartbeat, NodeEntry, Snapshot, Update
from viewer.details import SLOW_FIELDS, carries_details

# The same bound as the table's rows (viewer.model.MAX_ROWS): more could never be shown.
MAX_PENDING_NODES: Final = 20_000
# Nodes the UI applies per event-loop turn: ~14 µs each (row, sort key, filter, dataChanged runs),
# so a slice holds the UI thread ~3 ms, and a 1,500-node batch of a 10,000-node fleet takes eight
# turns instead of one 35 ms block (bench/viewer_stall.py --replay).
APPLY_SLICE_NODES: Final = 200


@dataclass(frozen=True, slots=True)
class NodeBatch:
    """Everything the UI applies in one go.

    ``is_snapshot`` means ``entries`` is the whole fleet: rows not in it must go.
    Otherwise ``entries`` holds the latest state of nodes that changed and ``removed``
    the ids the collector forgot.
    """

    is_snapshot: bool
    server_time_at: float
    entries: Mapping[str, NodeEntry]
    removed: frozenset[str]
    messages: int  # how many collector messages were merged into this batch
    refused: int = 0  # entries of new nodes dropped because the batch was full


def merge_entry(old: NodeEntry, new: NodeEntry) -> NodeEntry:
    """Return ``new`` completed with what ``old`` had and ``new`` omits (facts, sample, history).

    Two heartbeats of one node in one batch: the slow-tier fields the older one carried
    (every ~5 s, docs/protocol.md 5.2) ride on in the newer one, or the pane would lose them.
    """
    if old.last_sample is not None and new.last_sample is not None and carries_details(old.last_sample):
        new = new.model_copy(update={"last_sample": carry_details(old.last_sample, new.last_sample)})
    if new.facts is not None and new.last_sample is not None and new.history is not None:
        return new
    # model_copy skips validation on purpose: both inputs were validated by the codec.
    return new.model_copy(
        update={
            "facts": new.facts if new.facts is not None else old.facts,
            "last_sample": new.last_sample if new.last_sample is not None else old.last_sample,
            "history": new.history if new.history is not None else old.history,
        }
    )


def carry_details(old: Heartbeat, new: Heartbeat) -> Heartbeat:
    """``new`` with the slow-tier fields it lacks taken from ``old`` (the older heartbeat's values)."""
    missing = {name: getattr(old, name) for name in SLOW_FIELDS if getattr(new, name) is None}
    missing = {name: value for name, value in missing.items() if value is not None}
    # model_copy skips validation on purpose: both heartbeats were validated by the codec.
    return new.model_copy(update=missing) if missing and new.sampled_at >= old.sampled_at else new


class PendingBatch:
    """Collector messages received since the last ``take()``, merged latest-per-node."""

    def __init__(self, max_nodes: int = MAX_PENDING_NODES) -> None:
        self._max_nodes = max_nodes
        self._reset()

    def _reset(self) -> None:
        self._is_snapshot = False
        self._server_time_at = 0.0
        self._entries: dict[str, NodeEntry] = {}
        self._removed: set[str] = set()
        self._messages = 0
        self._refused = 0

    def __bool__(self) -> bool:
        """True if there is anything to hand to the UI."""
        return self._messages > 0

    def add(self, message: Snapshot | Update) -> None:
        """Merge one message; a snapshot supersedes everything merged before it."""
        self._messages += 1
        self._server_time_at = message.server_time_at
        if isinstance(message, Snapshot):
            self._is_snapshot = True
            self._removed.clear()
            self._entries = {entry.status.node_id: entry for entry in islice(message.nodes, self._max_nodes)}
            self._refused = max(0, len(message.nodes) - self._max_nodes)
            return
        for node_id in message.removed:
            self._entries.pop(node_id, None)
            if not self._is_snapshot:
                self._removed.add(node_id)
        for entry in message.nodes:
            node_id = entry.status.node_id
            self._removed.discard(node_id)
            old = self._entries.get(node_id)
            if old is not None:
                self._entries[node_id] = merge_entry(old, entry)
            elif len(self._entries) < self._max_nodes:
                self._entries[node_id] = entry
            else:
                self._refused += 1

    def take(self) -> NodeBatch | None:
        """Return the merged batch and start a new one, or None if nothing arrived."""
        if not self:
            return None
        batch = NodeBatch(
            is_snapshot=self._is_snapshot,
            server_time_at=self._server_time_at,
            entries=self._entries,
            removed=frozenset(self._removed),
            messages=self._messages,
            refused=self._refused,
        )
        self._reset()
        return batch


def split_batch(batch: NodeBatch, max_nodes: int = APPLY_SLICE_NODES) -> list[NodeBatch]:
    """``batch`` as slices of at most ``max_nodes`` entries that, applied in order, change the table as it does.

    The first slice carries the removals, the message count and the refusals; a snapshot is
    never cut (its entries are the whole fleet: rows missing from a slice would be removed).
    """
    if max_nodes < 1:
        raise RuntimeError(f"split_batch: expected max_nodes >= 1, got {max_nodes}")
    if batch.is_snapshot or len(batch.entries) <= max_nodes:
        return [batch]
    items = list(batch.entries.items())
    slices = [replace(batch, entries=dict(items[:max_nodes]))]
    for start in range(max_nodes, len(items), max_nodes):
        chunk = dict(items[start : start + max_nodes])
        slices.append(replace(batch, entries=chunk, removed=frozenset(), messages=0, refused=0))
    return slices
