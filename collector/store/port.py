"""``StorePort``: an ``IngestPort`` that acks only what the store has committed (docs/protocol.md 4.1).

It wraps the connection's ``CachePort`` (``collector.cache_port``), so every rule
the cache port applies (trust, replacement, fan-out) still holds; on top of it:

- ``hello``: acked with the seq the store has committed of this agent instance; the
  cache is rewound to what the store took (committed or queued), so the replay of a
  sample a full queue refused is new data, and the replay of one still queued is not;
- ``heartbeat``: a sample new to the cache goes to the store's queue; the seq
  returned, which the session acks at its usual pace, is the highest committed
  one, never past a sample the full queue refused;
- ``closed``: the node's registry row is written (also at the hello and the first sample
  of a connection; ``DurableStore.refresh`` rewrites it every minute, 1/60 of the fleet a second).

Pure, like the port it wraps: no I/O here (the writer thread does it).
Not here: the protocol rules (``collector.ingest_session``).
"""

from __future__ import annotations

from collector.cache import NodeCache
from collector.cache_port import CachePort
from collector.history import point_values
from collector.store.service import DurableStore
from shared.messages import Heartbeat, Hello


class StorePort:
    """Connection-scoped: the ``CachePort`` of one connection, with acks gated by the store."""

    __slots__ = ("_cache", "_inner", "_instance", "_node_id", "_row_due", "_store", "_stored")

    def __init__(self, inner: CachePort, store: DurableStore) -> None:
        self._inner = inner
        self._store = store
        self._cache: NodeCache = inner.cache
        self._node_id = ""
        self._instance = ""
        self._stored = 0  # the highest seq this connection handed to the store
        self._row_due = False  # the registry row waits for this connection's first sample

    def hello(self, hello: Hello, now: float) -> int:
        """The cache takes the hello first (it may refuse it); then the store says what to ack."""
        self._inner.hello(hello, now)
        node_id, instance = hello.node_id, hello.agent_instance_id
        link = self._store.link
        queued = link.gate.accepted_seq(node_id)  # read before the gate's hello resets it
        seq = link.hello(node_id, instance, hello.ack_every, now)
        # Seqs the store already took (committed or queued) stay duplicates for the cache; only what a
        # full queue refused is taken again. After a restart the cache holds exactly the stored seq.
        taken = max(queued, seq)
        self._cache.rewind(node_id, instance, taken)
        self._node_id, self._instance, self._stored = node_id, instance, taken
        self._row_due = True
        record = self._cache.get(node_id)
        if record is not None:
            self._store.put(record)
        return seq

    def heartbeat(self, heartbeat: Heartbeat, frame: bytes, now: float) -> int | None:
        """Apply it to the cache; store it if it is new; the committed seq to ack, None if replaced."""
        held = self._inner.heartbeat(heartbeat, frame, now)
        if held is None:
            return None
        seq = heartbeat.seq
        link = self._store.link
        if held == seq and seq > self._stored:  # the cache took it as new (a duplicate leaves last_seq above it)
            self._stored = seq
            if self._row_due:  # the first sample of a connection goes into the registry row at once
                self._row_due = False
                self._put()
            return link.heartbeat(self._node_id, self._instance, seq, heartbeat.sampled_at, point_values(heartbeat))
        return link.ack_seq(self._node_id)

    def closed(self, clean: bool, now: float) -> None:
        """The cache hears of it, then the registry keeps the node's last state."""
        self._inner.closed(clean, now)
        if self._node_id:
            self._put()

    def _put(self) -> None:
        record = self._cache.get(self._node_id)
        if record is not None:
            self._store.put(record)
