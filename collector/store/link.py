"""The event loop's side of the store: what the ingest shell calls, in one object.

``StoreLink`` joins the writer (``collector.store.writer``) and the ack gate
(``collector.store.durability``). Every method runs on the event loop and
returns at once; the only cross-thread call is ``committed``, which the shell
schedules with ``loop.call_soon_threadsafe`` from the writer's ``on_durable``.

The ingest port calls ``hello`` and ``heartbeat`` and acks what they return:
the highest seq whose transaction has committed, never one past a refused
sample. docs/store.md shows the wiring line by line.

Not here: sockets, the cache, the clock (every call takes ``now``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from collector.store.durability import AckAction, AckGate, StoreHealth
from collector.store.model import Durable, NodeRow


class SampleWriter(Protocol):
    """What the link needs of a writer: ``StoreWriter`` (a thread) or ``ProcessWriter`` (a child process)."""

    def slot(self, node_id: str, instance_id: str) -> int: ...
    def retire(self, slot: int) -> None: ...
    def append_slot(self, slot: int, seq: int, sampled_at: float, values: Sequence[float | None]) -> bool: ...
    def put_node(self, row: NodeRow) -> None: ...
    def forget_node(self, node_id: str) -> None: ...
    def accepting(self) -> bool: ...
    def health(self) -> StoreHealth: ...


W = TypeVar("W", bound=SampleWriter)


class StoreLink(Generic[W]):
    """Ack gating and sample hand-off for every agent connection of one collector."""

    def __init__(self, writer: W, gate: AckGate, durable_by_node: dict[str, tuple[str, int]]) -> None:
        """``durable_by_node``: node id -> (instance id, last stored seq), from ``load_nodes`` at start."""
        self.writer = writer
        self.gate = gate
        self._restored = dict(durable_by_node)

    def hello(self, node_id: str, instance_id: str, ack_every: int | None, now: float) -> int:
        """An agent's hello: the seq to ack it with (what the store holds of this instance).

        The cache must then take seqs above this one as new (``NodeCache.hello(resume_seq=...)``).
        """
        instance, stored = self._restored.get(node_id, (instance_id, 0))
        durable = stored if instance == instance_id else 0
        slot, old = self.writer.slot(node_id, instance_id), self.gate.slot_of(node_id)
        if old >= 0 and old != slot:  # a new instance: the old one's slot is done with
            self.writer.retire(old)
        return self.gate.hello(node_id, instance_id, ack_every, durable, now, slot)

    def heartbeat(
        self, node_id: str, instance_id: str, seq: int, sampled_at: float, values: Sequence[float | None]
    ) -> int:
        """A new (not duplicate) heartbeat the cache applied: hand it to the store; the seq an ack may cover.

        The gate's rules (``should_store``, ``appended``, ``durable_seq``) on one look-up: this runs per heartbeat.
        """
        gate = self.gate
        node = gate.node(node_id, instance_id)
        if node is None:  # no hello on record (the node was forgotten meanwhile): stored, acked as before
            self.writer.append_slot(self.writer.slot(node_id, instance_id), seq, sampled_at, values)
            return gate.durable_seq(node_id)
        if node.hole:
            gate.refused += 1
        elif self.writer.append_slot(node.slot, seq, sampled_at, values):
            node.accepted = max(node.accepted, seq)
        else:
            node.hole = True
            gate.refused += 1
        return node.durable

    def ack_seq(self, node_id: str) -> int:
        """For a duplicate heartbeat: the seq an ack may cover, unchanged."""
        return self.gate.durable_seq(node_id)

    def committed(self, durables: list[Durable], now: float) -> list[AckAction]:
        """On the loop, after a commit: the acks that may go out now (optional: pacing also picks them up)."""
        return self.gate.committed(durables, now)

    def committed_slots(self, pairs: Sequence[int]) -> None:
        """On the loop, after a commit of the writer process: flat (slot, seq) pairs (``AckGate.committed_slots``)."""
        self.gate.committed_slots(pairs)

    def resyncs(self) -> list[str]:
        """Nodes whose refused samples can be replayed now: close their connections (the agent reconnects)."""
        return self.gate.resyncs(self.writer.accepting())

    def put_node(self, row: NodeRow) -> None:
        """Registry write (hello, close, state change): ``row.last_seq`` should be ``gate.accepted_seq``."""
        self.writer.put_node(row)

    def forget(self, node_id: str) -> None:
        """The cache forgot the node."""
        slot = self.gate.slot_of(node_id)
        if slot >= 0:
            self.writer.retire(slot)
        self.gate.gone(node_id)
        self._restored.pop(node_id, None)
        self.writer.forget_node(node_id)

    def health(self) -> StoreHealth:
        """For /api/v1/health: degraded (with its reason) stops acks."""
        return self.writer.health()
