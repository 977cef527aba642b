"""The durable store as the running collector uses it: open and restore at start, registry writes, health, queries.

``DurableStore.open`` opens the SQLite backend under ``config.data_dir`` (raising
``StoreOpenError`` naming the file and what to do), reloads the registry and the
recent window, and rebuilds every known node in the ``NodeCache``: disconnected,
with its last sample and last-seen time, and judged by the normal liveness rules
from the collector's start (``last_heard = now``). ``start(loop)`` starts the
writer process (``collector.store.proc``: encoding, SQLite and compaction off our
GIL), whose commit reports come back through ``loop.call_soon_threadsafe`` so the
ack gate only ever runs on the event loop. Reads (history, the restart window) stay
here, on the engine's own read connection.

What the ingest shell calls per connection is ``StorePort`` (``collector.store.port``);
this object holds what they share: the writer, the ack gate (``StoreLink``), and
the registry rows built from cache records (``row_of``).

It also holds the node keys' file (``keys``, ``collector.store.keystore``): read at open
(a damaged file refuses to start, naming it) and saved once more at ``close``.

Not here: SQL (``sqlite_engine``), ack rules (``durability``), sockets.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import msgpack

from collector.cache import STATES, NodeCache, NodeRecord
from collector.changes import STATUS_AND_SAMPLE, Change, ChangeKind
from collector.config import CollectorConfig
from collector.history import SERIES, HistoryRing
from collector.store.codec import values_of
from collector.store.durability import AckGate, StoreHealth
from collector.store.engine_view import EngineView
from collector.store.keystore import KeyStore
from collector.store.link import StoreLink
from collector.store.model import Durable, NodeRow, RangeResult, RawPoints
from collector.store.proc import ProcessWriter
from collector.store.restart import RestartPolicy
from collector.store.sqlite_engine import SqliteEngine
from collector.wire import pack
from shared.messages import Heartbeat, NodeFacts, NodeState

log = logging.getLogger("nodewatch.collector.store")

# Nodes per step of the restart's refill: one slice's chunks decoded in a worker thread, then merged into
# their rings on the loop (~0.1 ms each, so ~25 ms of loop), with the loop free in between.
FILL_SLICE_NODES = 250
# Online nodes' registry rows are rewritten every ROW_REFRESH_S, so last_sample is fresh after a kill -9.
ROW_REFRESH_S = 60.0
# ``refresh`` is called this often and rewrites the next 1/60 of the rows: 10,000 rows built and
# pickled at once held the loop and its GIL for ~0.1 s every minute.
REFRESH_INTERVAL_S = 1.0

Clock = Callable[[], float]


def row_of(record: NodeRecord, last_seq: int) -> NodeRow:
    """The registry row of ``record``; ``last_seq`` is what the store took of it, not the cache's own."""
    facts = record.facts_frame
    if facts is None:
        facts = record.facts_frame = pack(record.facts.model_dump(mode="python", exclude_none=True))
    r = record  # NodeRow's fields in order: the record's own, but the store's last seq
    return NodeRow(
        r.node_id, r.instance_id, facts, r.interval_s, r.state, r.state_since_at, r.reason, r.last_seen_at,
        last_seq, r.missing_samples, r.dropped_samples, r.last_sample_frame,
    )  # fmt: skip


def record_of(row: NodeRow, cache: NodeCache, now: float, wall: float) -> NodeRecord | None:
    """A cache record rebuilt from the registry, disconnected, its ring still empty (``fill_ring``).

    None (logged) for a row whose facts do not decode.
    """
    try:
        facts = NodeFacts.model_validate(msgpack.unpackb(row.facts, raw=False))
    except ValueError as exc:  # msgpack's and pydantic's errors are ValueErrors
        log.warning("store: node %r: facts do not decode, not restored: %.200r", row.node_id, exc)
        return None
    ring = HistoryRing(cache.history_capacity(row.interval_s))
    state: NodeState = next((s for s in STATES if s == row.state), "offline")
    record = NodeRecord(
        node_id=row.node_id,
        facts=facts,
        instance_id=row.instance_id,
        interval_s=row.interval_s,
        history=ring,
        state=state,
        state_since_at=row.state_since_at,
        reason=row.reason,
        last_heard=now,  # the normal rules run from the collector's start: offline within 10 intervals
        last_seen_at=row.last_seen_at,
        last_seq=row.last_seq,
        dropped_samples=row.dropped_samples,
        missing_samples=row.missing_samples,
        last_sample_frame=row.last_sample,
    )
    if state == "offline":  # forgotten on the wall-time schedule it had before the restart
        record.offline_since = now - max(0.0, wall - row.state_since_at)
    return record


def fill_ring(record: NodeRecord, recent: RawPoints, restored_seq: int) -> bool:
    """Put the stored recent window into a restored node's ring, before what arrived since the start.

    Returns whether the node's latest sample changed: when nothing arrived since the start and the
    registry's last sample is older than the newest stored point (a kill -9 came first), that point
    becomes the latest sample (``latest_sample``).
    """
    cols = recent.columns
    if record.instance_id != recent.instance_id or not len(cols):
        return False
    ring = record.history
    arrived = list(ring.points())  # since the start: all newer than what the store held
    k = bisect.bisect_left(cols.seq, arrived[0][0]) if arrived else len(cols)
    fresh = HistoryRing(ring.capacity)
    fresh.load(cols.seq[:k], [us / 1e6 for us in cols.at_us[:k]], [c[:k] for c in cols.series])
    for seq, at, values in arrived:
        fresh.add(seq, at, values)
    record.history = fresh
    if record.last_seq != restored_seq:
        return False
    latest = latest_sample(record.last_sample_frame, recent)
    if latest is None:
        return False
    record.last_sample_frame, record.last_sample_model = None, latest
    record.last_sample_at = latest.sampled_at
    return True


def latest_sample(frame: bytes | None, recent: RawPoints) -> Heartbeat | None:
    """The newest stored point as a sample, when ``frame`` (the registry's last sample) is older.

    Only what the store keeps per point comes back (the charted series; load as load_1 only is left
    out, since a sample's load_avg has three values): the rest of that sample was never written.
    None when ``frame`` is the newest sample anyway.
    """
    cols = recent.columns
    if not len(cols):
        return None
    seq = cols.seq[-1]
    if frame is not None:
        try:
            if msgpack.unpackb(frame, raw=False).get("seq") == seq:
                return None
        except (ValueError, AttributeError):  # a damaged frame: the point is all there is
            pass
    values = dict(zip(SERIES, (values_of(column[-1:], s)[0] for s, column in enumerate(cols.series)), strict=True))
    values.pop("load_1")
    try:
        return Heartbeat.model_validate({"seq": seq, "sampled_at": cols.at_us[-1] / 1e6, **values})
    except ValueError:
        return None


class DurableStore:
    """The writer, the ack gate and the registry writes of one collector; everything but ``close`` is sync."""

    def __init__(self, engine: SqliteEngine, cache: NodeCache, config: CollectorConfig, clock: Clock, wall: Clock):
        self.cache, self.clock, self.wall_clock = cache, clock, wall
        self._loop: asyncio.AbstractEventLoop | None = None
        self.writer = ProcessWriter(
            engine.data_dir, config.store_sync, self._on_durable, on_slots=self._on_slots, wall_clock=wall,
            policy=RestartPolicy(), on_exit=self._on_writer_exit,
        )  # fmt: skip
        self.engine = EngineView(engine, self.writer)
        self.link = StoreLink(self.writer, AckGate(config.ack_interval_s), {})
        self.restored = 0
        self._restored_seq: dict[str, int] = {}
        self.recent_loaded = False  # set once fill_rings is done
        self._refresh_todo: list[str] = []  # node ids ``refresh`` has still to rewrite this round
        self._refresh_slice = 0
        # The node key records, in node_keys.json next to the database (collector.store.keystore).
        self.keys = KeyStore(engine.path.parent)

    @classmethod
    def open(cls, config: CollectorConfig, cache: NodeCache, clock: Clock, wall: Clock) -> DurableStore:
        """Open ``config.data_dir`` and restore the fleet into ``cache``; raises ``StoreOpenError``."""
        if config.data_dir is None:
            raise RuntimeError("expected a config with a data_dir, got None")
        engine = SqliteEngine(config.data_dir, sync=config.store_sync)
        try:
            store = cls(engine, cache, config, clock, wall)
            store.keys.read()
            store.restore()
        except BaseException:
            engine.close()
            raise
        return store

    def restore(self) -> None:
        """Every node of the registry back into the cache; ``fill_rings`` adds their recent window later.

        Two steps so that health and the snapshot answer as soon as the registry is read: the
        recent window (15 min of every node) is the slow part of a restart.
        """
        now, wall = self.clock(), self.wall_clock()
        durable: dict[str, tuple[str, int]] = {}
        for row in self.engine.reader.load_nodes():
            record = record_of(row, self.cache, now, wall)
            if record is None:
                continue
            self.cache.adopt(record)
            durable[row.node_id] = (row.instance_id, row.last_seq)
        self._restored_seq = {node_id: seq for node_id, (_, seq) in durable.items()}
        self.link = StoreLink(self.writer, self.link.gate, durable)
        self.restored = len(durable)
        log.info("store: %s: %d nodes restored", self.engine.path, self.restored)

    async def fill_rings(self) -> list[Change]:
        """Load the recent window slice by slice in a worker thread, merging each into the rings on the loop.

        Returns the changes to publish: the nodes whose latest sample the store had newer. Each
        slice's merge is short (FILL_SLICE_NODES rings), and the loop runs between the steps, so
        health, hellos and heartbeats get through while 10,000 x 15 min of points come back.
        """
        since = self.wall_clock() - self.cache.history_window_s
        started = time.perf_counter()
        slices = self.engine.reader.recent_slices(since, FILL_SLICE_NODES)
        changes = []
        loaded = 0
        while (recent := await asyncio.to_thread(next, slices, None)) is not None:
            for node_id, points in recent.items():
                record = self.cache.get(node_id)
                if record is not None and fill_ring(record, points, self._restored_seq.get(node_id, -1)):
                    changes.append(Change(node_id, STATUS_AND_SAMPLE))
            loaded += len(recent)
            await asyncio.sleep(0)  # let heartbeats and health through between slices
        self.recent_loaded = True
        log.info("store: recent window of %d nodes loaded in %.2f s", loaded, time.perf_counter() - started)
        return changes

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer process; its commit reports run on ``loop``."""
        self._loop = loop
        self.writer.start()

    async def close(self) -> None:
        """Save the node keys, commit what is queued, stop the writer and close the database, off the event loop."""
        await self.keys.save()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.engine.close()

    def _on_durable(self, durables: list[Durable]) -> None:
        """On the writer thread: hand the commit to the loop (the gate is only touched there)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._committed, durables)

    def _committed(self, durables: list[Durable]) -> None:
        # The acks this returns are not sent from here: each session's pacing acks the durable seq
        # its port reports, at most one commit (about 1 s) behind the cache.
        self.link.committed(durables, self.clock())

    def _on_slots(self, pairs: array[int]) -> None:
        """On the receiver thread: a commit report as (slot, seq) pairs, for the gate on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.link.committed_slots, pairs)

    def _on_writer_exit(self) -> None:
        """On the receiver thread: the writer process died; the loop holes what it lost, then it restarts."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._writer_lost)
        else:
            self.writer.lost()

    def _writer_lost(self) -> None:
        """Nodes with samples in flight get a hole (they resync and replay once the new child accepts), and every
        registry row goes to the new child: rows the dead one held uncommitted died with it."""
        gate = self.link.gate
        holed = gate.lost()
        for record in self.cache.nodes():  # last_seq: never ahead of what is stored (the new child's floors)
            acks = gate.node(record.node_id, record.instance_id)
            self.link.put_node(row_of(record, record.last_seq if acks is None else acks.durable))
        self.writer.lost()
        log.warning("store: writer process lost; %d nodes will replay what it held uncommitted", holed)

    # ---- registry ---------------------------------------------------------------------------

    def put(self, record: NodeRecord) -> None:
        """Write ``record``'s registry row (coalesced per node until the next commit)."""
        self.link.put_node(row_of(record, self.link.gate.accepted_seq(record.node_id) or record.last_seq))

    def changed(self, changes: Iterable[Change]) -> None:
        """After ``expire``: rewrite the rows whose state moved, forget the removed nodes."""
        for change in changes:
            if change.kind & ChangeKind.REMOVED:
                self.link.forget(change.node_id)
                continue
            record = self.cache.get(change.node_id)
            if record is not None:
                self.put(record)

    def refresh(self) -> None:
        """Rewrite the next slice of connected nodes' rows, each once per ``ROW_REFRESH_S``: last sample and
        last-seen survive a kill -9."""
        todo = self._refresh_todo
        if not todo:
            todo.extend(record.node_id for record in self.cache.nodes() if record.conn is not None)
            self._refresh_slice = math.ceil(len(todo) * REFRESH_INTERVAL_S / ROW_REFRESH_S)
        for _ in range(min(len(todo), self._refresh_slice)):
            record = self.cache.get(todo.pop())
            if record is not None and record.conn is not None:
                self.put(record)

    def resync_conns(self) -> list[int]:
        """Connections to close so their agents replay what a full queue refused (``StoreLink.resyncs``)."""
        conns = []
        for node_id in self.link.resyncs():
            record = self.cache.get(node_id)
            if record is not None and record.conn is not None:
                conns.append(record.conn)
        return conns

    # ---- health and reads -------------------------------------------------------------------

    def health(self) -> StoreHealth:
        """The writer's state: ``degraded`` with a reason while it cannot commit or the queue is full."""
        return self.link.health()

    def health_map(self) -> dict[str, Any]:
        """``health()`` as /api/v1/health shows it, plus where the store is."""
        body = asdict(self.health())
        body["path"] = str(self.engine.path)
        body["restored_nodes"] = self.restored
        body["recent_loaded"] = self.recent_loaded
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in body.items()}

    async def query(self, node_id: str, from_at: float, to_at: float, step_s: float) -> RangeResult:
        """One node's history from the store, in a worker thread (the reader has its own connection)."""
        return await asyncio.to_thread(self.engine.reader.query, node_id, from_at, to_at, step_s, self.wall_clock())
