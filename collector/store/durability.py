"""What an ack may cover, and when the store is degraded: pure decisions the ingest shell executes.

An ack tells the agent it may drop a sample, so with a store it may cover only
samples whose transaction has committed (docs/protocol.md 4.1: acks are
cumulative). ``AckGate`` keeps, per node, the highest seq handed to the store
(``accepted``) and the highest committed (``durable``), and returns the acks to
send as values (STYLE 22), paced like ``collector.acks.AckPacer``.

Back-pressure: when the writer's queue refuses a sample, that node has a hole,
and a cumulative ack must never pass it. The gate then stops storing and acking
that node: the agent keeps its backlog. Once the store accepts again, the gate
names the nodes to resync: the shell closes their connections, the agent
reconnects, the hello is acked with the durable seq, and the agent replays the
rest (the cache must then accept seqs above ``accepted``, see docs/store.md).

``StoreHealth`` folds the writer's state into what /api/v1/health says.

Not here: sending, sockets, threads, the clock itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from collector.store.model import Durable


@dataclass(frozen=True, slots=True)
class AckAction:
    """Send ``ack{seq}`` to the connection of ``node_id`` if it still runs ``instance_id``."""

    node_id: str
    instance_id: str
    seq: int


@dataclass(slots=True)
class NodeAcks:
    """One node's ack state; the heartbeat path (``StoreLink.heartbeat``) reads and moves it directly."""

    instance_id: str
    every: int
    accepted: int  # highest seq the store took (queued or committed)
    durable: int  # highest seq committed
    acked: int  # highest seq acked on the current connection
    acked_at: float
    hole: bool = False  # a sample was refused: store and ack nothing more until a resync
    slot: int = -1  # the writer's number for (node, instance): commit reports name it (``committed_slots``)


class AckGate:
    """Per node: what may be acked, paced at most ``every`` samples or ``interval_s`` apart."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._nodes: dict[str, NodeAcks] = {}
        self._by_slot: dict[int, NodeAcks] = {}
        self.refused = 0  # samples not stored because of back-pressure (still in the agents' backlogs)

    def hello(  # noqa: PLR0917 - the hello's fields, as the shell has them
        self, node_id: str, instance_id: str, every: int | None, durable_seq: int, now: float, slot: int = -1
    ) -> int:
        """A (re)connected agent: returns the seq to ack its hello with, and clears any hole.

        ``durable_seq`` is what the store holds for this instance (``NodeRow.last_seq`` after a
        restart, or 0 for a new instance). The cache must treat seqs above the returned value as
        new, so the replay fills the hole. ``slot``: the writer's number for this (node, instance).
        """
        node = self._nodes.get(node_id)
        same = node is not None and node.instance_id == instance_id
        durable = max(node.durable, durable_seq) if node is not None and same else durable_seq
        acks = NodeAcks(instance_id, max(1, every or 1), durable, durable, durable, now, slot=slot)
        self._nodes[node_id] = acks
        if node is not None and node.slot >= 0:
            self._by_slot.pop(node.slot, None)
        if slot >= 0:
            self._by_slot[slot] = acks
        return durable

    def slot_of(self, node_id: str) -> int:
        """The writer's slot of the node's current instance, -1 if none."""
        node = self._nodes.get(node_id)
        return -1 if node is None else node.slot

    def node(self, node_id: str, instance_id: str) -> NodeAcks | None:
        """The ack state of ``node_id`` if it runs ``instance_id`` (for ``StoreLink.heartbeat``)."""
        node = self._nodes.get(node_id)
        return node if node is not None and node.instance_id == instance_id else None

    def should_store(self, node_id: str, instance_id: str) -> bool:
        """Whether a new sample of this node goes to the store; False while it has a hole."""
        node = self._nodes.get(node_id)
        if node is not None and node.instance_id == instance_id and node.hole:
            self.refused += 1
            return False
        return True

    def appended(self, node_id: str, instance_id: str, seq: int, accepted: bool) -> None:
        """The store took (or, full, refused) sample ``seq``; a refusal opens a hole."""
        node = self._nodes.get(node_id)
        if node is None or node.instance_id != instance_id:
            return
        if accepted:
            node.accepted = max(node.accepted, seq)
        else:
            node.hole = True
            self.refused += 1

    def accepted_seq(self, node_id: str) -> int:
        """The highest seq of this node the store has taken: what the cache may dedup against."""
        node = self._nodes.get(node_id)
        return 0 if node is None else node.accepted

    def durable_seq(self, node_id: str) -> int:
        """The highest committed seq of this node's current instance."""
        node = self._nodes.get(node_id)
        return 0 if node is None else node.durable

    def committed(self, durables: Iterable[Durable], now: float) -> list[AckAction]:
        """A commit finished: the acks now due, at most one per node."""
        actions = []
        for item in durables:
            node = self._nodes.get(item.node_id)
            if node is None or node.instance_id != item.instance_id or item.seq <= node.durable:
                continue
            node.durable = item.seq
            # Never ack past a hole's first refused seq: everything accepted is below it.
            ackable = min(node.durable, node.accepted)
            if ackable > node.acked and (ackable - node.acked >= node.every or now - node.acked_at >= self.interval_s):
                node.acked = ackable
                node.acked_at = now
                actions.append(AckAction(item.node_id, item.instance_id, ackable))
        return actions

    def committed_slots(self, pairs: Sequence[int]) -> None:
        """A commit finished, reported as flat ``(slot, seq, slot, seq, ...)``: move each node's durable seq.

        The compact twin of ``committed`` for the writer process (no ``Durable`` per node and commit).
        It returns no acks: the sessions' pacing acks ``durable_seq`` (``StorePort.heartbeat``).
        A slot names one (node, instance), so a report of an old instance finds no node here.
        """
        by_slot = self._by_slot
        it = iter(pairs)
        for slot, seq in zip(it, it, strict=True):
            node = by_slot.get(slot)
            if node is not None and seq > node.durable:
                node.durable = seq

    def lost(self) -> int:
        """The writer process died with what it held uncommitted: hole every node with samples in flight.

        Those samples were never acked; the resync closes these nodes' connections once the store
        accepts again, and the agents replay from ``durable`` on. Returns how many nodes.
        """
        holed = 0
        for node in self._nodes.values():
            if node.accepted > node.durable:
                node.accepted, node.hole = node.durable, True
                holed += 1
        return holed

    def resyncs(self, store_accepting: bool) -> list[str]:
        """Nodes whose hole can be filled now: close their connections so the agents replay."""
        if not store_accepting:
            return []
        return sorted(node_id for node_id, node in self._nodes.items() if node.hole)

    def gone(self, node_id: str) -> None:
        """The cache forgot the node: forget its ack state too."""
        node = self._nodes.pop(node_id, None)
        if node is not None and node.slot >= 0:
            self._by_slot.pop(node.slot, None)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The store's part of /api/v1/health: ``degraded`` stops acks; ``reason`` says why."""

    status: str  # "ok" or "degraded"
    reason: str | None
    since_at: float  # wall time of the last status change
    queued: int
    queue_capacity: int
    pending: int  # samples taken off the queue, not yet committed (kept while the disk is full)
    committed_samples: int
    refused_samples: int  # refused because the queue was full: still in the agents' backlogs
    lost_samples: int  # accepted but never committed (only at close with a dead disk); always counted
    commit_failures: int
    last_commit_at: float | None
    last_commit_ms: float | None
    restarts: int = 0  # writer processes started after one died (``collector.store.restart``)


def health_reason(queued: int, capacity: int, failure: str | None) -> str | None:
    """Why the store is degraded, or None: a write failure wins over a full queue."""
    if failure is not None:
        return failure
    if queued >= capacity:
        return f"store queue full ({queued} samples waiting for the disk)"
    return None


def accepting(queued: int, capacity: int, failure: str | None) -> bool:
    """Whether resyncs may start: no write failure, and the queue at most half full (hysteresis)."""
    return failure is None and queued * 2 <= capacity
