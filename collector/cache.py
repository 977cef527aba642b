"""The collector's authoritative node cache: a pure state machine over hellos, heartbeats and closes.

``NodeCache`` decides liveness (online -> stale after 3 missed intervals ->
offline after 10 -> forgotten after ``forget_after_s``) by a monotonic ``now``
passed in by the caller, keeps each node's latest sample and history ring,
and tells the caller what changed so it can fan the change out.

Not here: the record itself and the liveness thresholds (``collector.node_record``),
sockets, tasks, sleeping, and rendering records as wire maps or frames
(``collector.wire``). The shell calls ``expire(now)`` when
``next_due()`` says a transition is due.
"""

from __future__ import annotations

import heapq
import math

from collector.changes import (
    REMOVED_BIT,
    Change,
    ChangeKind,
    ExpireResult,
    HeartbeatResult,
    HelloResult,
)
from collector.history import HistoryRing, point_values
from collector.node_record import (
    OFFLINE_AFTER_INTERVALS,
    REASON_AGENT_CLOSED,
    REASON_HEARTBEAT,
    REASON_HELLO,
    REASON_NO_HEARTBEAT,
    SKEW_WINDOW,
    STALE_AFTER_INTERVALS,
    STATES,
    NodeRecord,
    stored_sample,
)
from collector.trust.sanity import MAX_FUTURE_S, check_sampled_at
from shared.errors import ErrorReason, ProtocolError
from shared.messages import Heartbeat, Hello, NodeState

__all__ = [  # the change vocabulary (collector.changes) and the record (collector.node_record) import from here too
    "OFFLINE_AFTER_INTERVALS",
    "REASON_AGENT_CLOSED",
    "REASON_HEARTBEAT",
    "REASON_HELLO",
    "REASON_NO_HEARTBEAT",
    "REMOVED_BIT",
    "SKEW_WINDOW",
    "STALE_AFTER_INTERVALS",
    "STATES",
    "Change",
    "ChangeKind",
    "ExpireResult",
    "HeartbeatResult",
    "HelloResult",
    "NodeCache",
    "NodeRecord",
    "stored_sample",
]


class NodeCache:
    """Node states keyed by node id; every method takes the monotonic ``now`` and wall ``wall``."""

    def __init__(
        self,
        *,
        forget_after_s: float = 24 * 3600.0,
        max_nodes: int = 10_000,
        history_window_s: float = 900.0,
        history_max_points: int = 900,
    ) -> None:
        self.forget_after_s = forget_after_s
        self.max_nodes = max_nodes
        self.history_window_s = history_window_s
        self.history_max_points = history_max_points
        self._nodes: dict[str, NodeRecord] = {}
        self._heap: list[tuple[float, str]] = []
        self._counts: dict[NodeState, int] = dict.fromkeys(STATES, 0)
        self.samples_clamped = 0  # samples stamped beyond MAX_FUTURE_S ahead, stored at the bound

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def get(self, node_id: str) -> NodeRecord | None:
        """The node's record, or None if unknown (never seen, or forgotten)."""
        return self._nodes.get(node_id)

    def nodes(self, state: NodeState | None = None) -> list[NodeRecord]:
        """Every node (in ``state`` if given), sorted by node id."""
        return [n for _, n in sorted(self._nodes.items()) if state is None or n.state == state]

    def counts(self) -> dict[str, int]:
        """Node count per state; kept up to date on every transition, so this is O(1)."""
        return {state: self._counts[state] for state in STATES}

    def history_capacity(self, interval_s: float) -> int:
        """Points in a node's ring: ``history_window_s`` at its rate, capped at ``history_max_points``."""
        return max(1, min(self.history_max_points, math.ceil(self.history_window_s / interval_s)))

    def adopt(self, record: NodeRecord) -> None:
        """Take a node rebuilt from the store at start (``collector.store.service``); judged from ``last_heard`` on."""
        self._nodes[record.node_id] = record
        self._counts[record.state] += 1
        self._schedule(record)

    def rewind(self, node_id: str, instance_id: str, seq: int) -> None:
        """Take seqs above ``seq`` of this instance as new: the store holds only up to it (a replay fills the rest)."""
        node = self._nodes.get(node_id)
        if node is not None and node.instance_id == instance_id and node.last_seq > seq:
            node.last_seq = seq

    def hello(self, hello: Hello, conn: int, now: float, wall: float, *, verified: bool = False) -> HelloResult:
        """Register a hello on connection ``conn``; raises ProtocolError for a duplicate node or a full cache.

        ``verified``: a node key proved the node id (``collector.trust.identity``), so this hello
        replaces the node's connection whatever its instance id, instead of a 4409.
        """
        node = self._nodes.get(hello.node_id)
        if node is None:
            if len(self._nodes) >= self.max_nodes:
                raise ProtocolError(
                    ErrorReason.CAPACITY_REACHED,
                    f"expected at most {self.max_nodes} nodes, this collector already holds {len(self._nodes)}",
                )
            node = NodeRecord(
                node_id=hello.node_id,
                facts=hello.facts,
                instance_id=hello.agent_instance_id,
                interval_s=hello.interval_s,
                history=HistoryRing(self.history_capacity(hello.interval_s)),
                state="online",
                state_since_at=wall,
                reason=REASON_HELLO,
                last_heard=now,
            )
            self._nodes[hello.node_id] = node
            self._counts["online"] += 1
            kind = ChangeKind.STATUS | ChangeKind.FACTS
            replaced = None
        else:
            same_instance = node.instance_id == hello.agent_instance_id
            if not same_instance and not verified and (node.conn is not None or node.state == "online"):
                raise ProtocolError(
                    ErrorReason.DUPLICATE_NODE,
                    f"expected node_id {hello.node_id!r} to be free, got it held by another agent instance",
                )
            replaced = node.conn if same_instance or verified else None
            kind = ChangeKind.STATUS
            if not same_instance:
                # A new instance counts seq from 1 again; its gaps are its own.
                node.instance_id = hello.agent_instance_id
                node.last_seq = 0
                node.missing_samples = 0
                node.history.new_run()
            if node.facts != hello.facts:
                node.facts = hello.facts
                node.facts_frame = None
                kind |= ChangeKind.FACTS
            if node.interval_s != hello.interval_s:
                self._resize_history(node, hello.interval_s)
            node.last_heard = now
            if node.state != "online":
                self._transition(node, "online", REASON_HELLO, wall, now)
        node.conn = conn
        node.dropped_samples = hello.dropped_samples
        node.last_seen_at = wall
        node.restart_skew(hello.sent_at - wall)
        self._schedule(node)
        return HelloResult(ack_seq=node.last_seq, replaced_conn=replaced, changes=[Change(node.node_id, kind)])

    def heartbeat(
        self, node_id: str, conn: int, heartbeat: Heartbeat, now: float, wall: float, *, frame: bytes | None = None
    ) -> HeartbeatResult:
        """Apply one heartbeat from connection ``conn``: dedup by seq, history in order, latest only if newer.

        ``frame`` is the validated msgpack frame the heartbeat was decoded from, if the caller has it:
        subscribers are then sent those bytes instead of a fresh encoding of the same sample.
        """
        node = self._nodes.get(node_id)
        if node is None or node.conn != conn:
            return HeartbeatResult(0, False, False, [])
        node.last_heard = now
        node.last_seen_at = wall
        if node.state != "online":
            self._transition(node, "online", REASON_HEARTBEAT, wall, now)
            self._schedule(node)
        seq, last_seq = heartbeat.seq, node.last_seq
        if seq <= last_seq:
            node.duplicates += 1
            return HeartbeatResult(last_seq, True, True, [node.status_change], node)
        if last_seq:
            # The first seq after a fresh start is a baseline, not a gap: an
            # agent may already have trimmed what an earlier collector acked.
            node.missing_samples += seq - last_seq - 1
        node.last_seq = seq
        sampled_at = heartbeat.sampled_at
        node.add_skew(sampled_at - wall)  # the raw stamp: a fast clock still shows as skew
        if sampled_at > wall + MAX_FUTURE_S:  # far ahead: stored and shown at the bound (docs/security.md, 3.2)
            sampled_at = check_sampled_at(sampled_at, wall).sampled_at
            heartbeat, frame = heartbeat.model_copy(update={"sampled_at": sampled_at}), None
            self.samples_clamped += 1
        if not node.history.add(seq, sampled_at, point_values(heartbeat)):
            # A replay of a point the ring holds (the store refused it first: ``rewind``): the store takes it
            # again, but it is no news, and the latest sample stays the newer one the node sent before.
            return HeartbeatResult(seq, False, True, [node.status_change], node)
        # The latest sample is the newest by seq of the current instance (a new instance resets
        # last_seq, so any seq that got here is newer), never by the agent's sampled_at: one sample
        # stamped an hour ahead can no longer freeze it (issue 13, finding 3).
        node.last_sample_at = sampled_at
        node.last_sample_frame = frame
        node.last_sample_model = heartbeat if frame is None else None
        # The node's own Change (STATUS | SAMPLE), built once: this runs per heartbeat.
        return HeartbeatResult(seq, False, True, [node.sample_change], node)

    def forget(self, node_id: str) -> list[Change]:
        """Drop a node that holds no connection (an operator's forget, or eviction for a new node)."""
        node = self._nodes.get(node_id)
        if node is None or node.conn is not None:
            return []
        del self._nodes[node_id]
        self._counts[node.state] -= 1
        return [Change(node_id, ChangeKind.REMOVED)]

    def close(self, node_id: str, conn: int, *, clean: bool, now: float, wall: float) -> list[Change]:
        """Connection ``conn`` ended; a clean close (1000) makes the node offline at once."""
        node = self._nodes.get(node_id)
        if node is None or node.conn != conn:
            return []
        node.conn = None
        if clean and node.state != "offline":
            self._transition(node, "offline", REASON_AGENT_CLOSED, wall, now)
            self._schedule(node)
        return [Change(node_id, ChangeKind.STATUS)]

    def next_due(self) -> float | None:
        """When to call ``expire`` next: never later than the earliest transition, sometimes earlier.

        Heartbeats push a node's deadline later without touching the heap, so
        an entry may be early; ``expire`` then re-arms it at the real time.
        """
        heap = self._heap
        while heap:
            due, node_id = heap[0]
            node = self._nodes.get(node_id)
            if node is not None and node.heap_due == due:
                return due
            heapq.heappop(heap)  # superseded entry
        return None

    def expire(self, now: float, wall: float) -> ExpireResult:
        """Apply every transition due by ``now``, timestamped when it was due, not when we noticed."""
        changes: dict[str, ChangeKind] = {}
        drop_conns: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, node_id = heapq.heappop(heap)
            node = self._nodes.get(node_id)
            if node is None or node.heap_due != due:
                continue
            node.heap_due = None
            if self._advance(node, now, wall):
                changes[node_id] = changes.get(node_id, ChangeKind(0)) | ChangeKind.STATUS
                if node.state == "offline" and node.conn is not None:
                    drop_conns.append(node.conn)
            if node_id in self._nodes:
                self._schedule(node)
            else:
                changes[node_id] = ChangeKind.REMOVED
        return ExpireResult([Change(node_id, kind) for node_id, kind in changes.items()], drop_conns)

    def _advance(self, node: NodeRecord, now: float, wall: float) -> bool:
        """Step ``node`` through every transition due by ``now``; True if its state changed."""
        changed = False
        while (due := node.due(self.forget_after_s)) <= now:
            at_wall = wall - (now - due)
            if node.state == "online":
                self._transition(node, "stale", REASON_NO_HEARTBEAT, at_wall, due)
            elif node.state == "stale":
                self._transition(node, "offline", REASON_NO_HEARTBEAT, at_wall, due)
            elif node.conn is None:
                del self._nodes[node.node_id]
                self._counts["offline"] -= 1
                return True
            else:
                # Offline but still connected (a hung agent): keep it while the socket lives.
                node.offline_since = now
                return changed
            changed = True
        return changed

    def _transition(self, node: NodeRecord, state: NodeState, reason: str, at_wall: float, at_mono: float) -> None:
        self._counts[node.state] -= 1
        self._counts[state] += 1
        node.state = state
        node.reason = reason
        node.state_since_at = at_wall
        node.offline_since = at_mono if state == "offline" else None

    def _schedule(self, node: NodeRecord) -> None:
        """Keep one heap entry per node at or before its real due time; later ones are re-pushed lazily."""
        due = node.due(self.forget_after_s)
        if node.heap_due is None or due < node.heap_due:
            node.heap_due = due
            heapq.heappush(self._heap, (due, node.node_id))

    def _resize_history(self, node: NodeRecord, interval_s: float) -> None:
        node.history = node.history.resized(self.history_capacity(interval_s))
        node.interval_s = interval_s
