"""The store's one writer thread: a bounded queue in, grouped commits out, durability reported back.

The event loop calls ``append`` (a deque append and a length check, never a wait)
and ``put_node``. The thread commits what has queued at most ``commit_interval_s``
apart, in one transaction, then calls ``on_durable`` with the highest committed
seq per (node, instance): the shell wraps it with ``loop.call_soon_threadsafe``
and feeds ``AckGate.committed``. Between commits it runs the backend's
maintenance (compaction, rollups, retention).

A full queue refuses (``append`` returns False): the shell stops acking that
node. A failed commit (disk full, I/O error) keeps its batch in memory, at most
``batch_max`` samples, and retries with backoff; the queue then fills and refuses,
so memory stays bounded and nothing is dropped. ``health()`` says degraded, with
the reason, until a commit succeeds again. The only loss is what is still
unwritten when ``close`` gives up on a dead disk, and that is counted.

Not here: SQL (the backend), ack decisions (``collector.store.durability``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from collector.store.durability import StoreHealth, accepting, health_reason
from collector.store.model import Durable, NodeRow, Sample, StoreBackend, StoreWriteError

log = logging.getLogger("nodewatch.collector.store")

# Commits at most this far apart (the issue: "about 1 s"): an ack waits at most this long for its commit.
COMMIT_INTERVAL_S = 1.0
# 20 s of 10,000 nodes at 1 Hz: rides out a slow disk for a while; ~100 bytes per queued sample.
QUEUE_MAX = 200_000
# One transaction holds at most this many samples; also what is kept in memory while commits fail.
BATCH_MAX = 50_000
# Retry a failed commit after this long, doubling up to RETRY_MAX_S while it keeps failing.
RETRY_S = 0.5
RETRY_MAX_S = 30.0
# Compaction, rollups and retention run this often (a head window is 120 s: twice per window).
MAINTAIN_INTERVAL_S = 60.0


class RegistryPuts:
    """Registry writes queued for the next commit, latest per node (None: forget), so bounded by the node count.

    Also the writers' slots: a number per (node, instance), taken at the hello, that the heartbeat path
    and the writer process's commit reports use instead of the two strings. Numbers are never reused
    (a late report of a retired slot names nothing); the table holds one live slot per node the gate
    knows, since the link retires a node's slot when its instance changes or the node is forgotten
    (an agent reconnecting with a new instance id each time must not grow it).
    """

    _lock: threading.Lock
    _nodes: dict[str, NodeRow | None]
    _slots: dict[tuple[str, str], int]
    _names: dict[int, tuple[str, str]]
    _slot_count: int

    def _init_registry(self) -> None:
        """The lock, the queued puts and the slot table (both writers' ``__init__`` call this first)."""
        self._lock = threading.Lock()
        self._nodes = {}
        self._slots = {}
        self._names = {}
        self._slot_count = 0

    def slot(self, node_id: str, instance_id: str) -> int:
        """The number of (node, instance), given at its first use and kept until ``retire``."""
        key = (node_id, instance_id)
        slot = self._slots.get(key)
        if slot is None:
            with self._lock:
                slot = self._slots[key] = self._slot_count
                self._names[slot] = key
                self._slot_count += 1
        return slot

    def retire(self, slot: int) -> None:
        """The gate is done with ``slot``: forget its names (a new hello of the same pair gets a new number)."""
        with self._lock:
            key = self._names.pop(slot, None)
            if key is not None and self._slots.get(key) == slot:
                del self._slots[key]

    def put_node(self, row: NodeRow) -> None:
        """Queue a registry write; a later put of the same node replaces one not yet written."""
        with self._lock:
            self._nodes[row.node_id] = row

    def forget_node(self, node_id: str) -> None:
        """Queue a registry removal (the cache forgot the node); its history stays until retention drops it."""
        with self._lock:
            self._nodes[node_id] = None


class StoreWriter(RegistryPuts):
    """Owns the backend's write side on one thread; every public method is safe from any thread."""

    def __init__(
        self,
        backend: StoreBackend,
        on_durable: Callable[[list[Durable]], None],
        *,
        commit_interval_s: float = COMMIT_INTERVAL_S,
        queue_max: int = QUEUE_MAX,
        batch_max: int = BATCH_MAX,
        maintain_interval_s: float = MAINTAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_cycle: Callable[[], None] | None = None,
    ) -> None:
        """``on_cycle``, if given, runs on the thread after every commit attempt (the child process reports health)."""
        self.backend, self.on_durable, self.on_cycle = backend, on_durable, on_cycle
        self.commit_interval_s, self.maintain_interval_s = commit_interval_s, maintain_interval_s
        self.queue_max, self.batch_max = queue_max, batch_max
        self.clock, self.wall_clock = clock, wall_clock
        self._queue: deque[Sample] = deque()
        self._pending: list[Sample] = []
        self._pending_nodes: dict[str, NodeRow | None] = {}
        self._init_registry()
        self._wake = threading.Event()
        self._done = threading.Condition(self._lock)
        self._cycles = 0  # started
        self._finished = 0
        self._stopping = False
        # What is failing, by kind ("commit", "maintain"), with the reason health shows.
        self._failures: dict[str, str] = {}
        self._since_at = wall_clock()
        self._retry_s = RETRY_S
        self._counts = {"committed": 0, "refused": 0, "lost": 0, "failures": 0}
        self._last_commit: tuple[float, float] | None = None  # (wall time, ms)
        self._next_maintain = clock() + maintain_interval_s
        self._thread = threading.Thread(target=self._run, name="nodewatch-store-writer", daemon=True)

    # ---- event-loop side -------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def append(self, sample: Sample) -> bool:
        """Queue one sample; False (and counted) if the queue is full: do not ack it."""
        queue = self._queue
        if len(queue) >= self.queue_max:
            self._counts["refused"] += 1
            return False
        queue.append(sample)
        if len(queue) >= self.batch_max:
            self._wake.set()  # a full batch is waiting: commit now rather than at the next tick
        return True

    def append_slot(self, slot: int, seq: int, sampled_at: float, values: Sequence[float | None]) -> bool:
        """``append`` of the node and instance of ``slot`` (``RegistryPuts.slot``)."""
        node_id, instance_id = self._names[slot]
        return self.append(Sample(node_id, instance_id, seq, sampled_at, tuple(values)))

    def failures(self) -> dict[str, str]:
        """What is failing now, by kind (``commit``, ``maintain``), with the reason health shows."""
        with self._lock:
            return dict(self._failures)

    def accepting(self) -> bool:
        """Whether refused samples may be replayed now: no failing write, and the queue half empty at most."""
        with self._lock:
            return accepting(len(self._queue), self.queue_max, self._failures.get("commit"))

    def health(self) -> StoreHealth:
        """The store's state for /api/v1/health."""
        with self._lock:
            queued = len(self._queue)
            reason = health_reason(queued, self.queue_max, self._failures.get("commit")) or self._failures.get(
                "maintain"
            )
            last = self._last_commit
            return StoreHealth(
                status="ok" if reason is None else "degraded",
                reason=reason,
                since_at=self._since_at,
                queued=queued,
                queue_capacity=self.queue_max,
                pending=len(self._pending),
                committed_samples=self._counts["committed"],
                refused_samples=self._counts["refused"],
                lost_samples=self._counts["lost"],
                commit_failures=self._counts["failures"],
                last_commit_at=None if last is None else last[0],
                last_commit_ms=None if last is None else last[1],
            )

    # ---- blocking side (tests, shutdown) ---------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Commit everything appended so far; True once it is durable, False if the commit failed."""
        with self._lock:
            target = self._cycles + 1  # the next cycle to start: one running now may have drained before our append
            self._wake.set()
            self._done.wait_for(lambda: self._finished >= target or self._stopping, timeout_s)
            return "commit" not in self._failures and not self._pending and not self._queue

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit what is left, stop the thread, close the backend; what could not be written is counted lost."""
        if self._thread.is_alive():
            self.flush(timeout_s)
            with self._lock:
                self._stopping = True
            self._wake.set()
            self._thread.join(timeout_s)
        with self._lock:
            lost = len(self._pending) + len(self._queue)
            self._counts["lost"] += lost
        if lost:
            log.error("store: %d samples could not be written before shutdown (%s)", lost, self._failures)
        self.backend.close()

    # ---- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        next_commit = self.clock() + self.commit_interval_s
        while True:
            self._wake.wait(max(0.0, next_commit - self.clock()))
            self._wake.clear()
            with self._lock:
                stopping = self._stopping
            if stopping:
                return
            try:
                ok = self._cycle()
            except Exception as exc:  # the thread's last line: a bug must show in health, not vanish
                log.exception("store: writer thread stopped")
                with self._lock:
                    self._failures["commit"] = f"store writer crashed: {exc!r:.200}"
                    self._stopping = True
                    self._done.notify_all()
                return
            delay = self.commit_interval_s if ok else self._retry_s
            next_commit = self.clock() + delay

    def _cycle(self) -> bool:
        """One commit (and maybe maintenance); False if it failed and must be retried."""
        with self._lock:
            self._cycles += 1
            room = self.batch_max - len(self._pending)
            while room > 0 and self._queue:
                self._pending.append(self._queue.popleft())
                room -= 1
            self._pending_nodes.update(self._nodes)
            self._nodes.clear()
            samples = self._pending
            nodes = [row for row in self._pending_nodes.values() if row is not None]
            forgotten = [node_id for node_id, row in self._pending_nodes.items() if row is None]
        ok = True
        if samples or self._pending_nodes:
            ok = self._commit(samples, nodes, forgotten)
        if ok and self.clock() >= self._next_maintain:
            # A failed maintenance is retried at the next interval; commits go on meanwhile.
            self._next_maintain = self.clock() + self.maintain_interval_s
            self._maintain()
        if self.on_cycle is not None:
            self.on_cycle()
        with self._lock:
            self._finished += 1
            self._done.notify_all()
        return ok

    def _commit(self, samples: list[Sample], nodes: list[NodeRow], forgotten: list[str]) -> bool:
        started = time.perf_counter()
        try:
            self.backend.write(samples, nodes, forgotten)
        except StoreWriteError as exc:
            self._failed("commit", str(exc))
            return False
        elapsed_ms = (time.perf_counter() - started) * 1000
        newest: dict[tuple[str, str], int] = {}
        for s in samples:
            key = (s.node_id, s.instance_id)
            if s.seq > newest.get(key, 0):
                newest[key] = s.seq
        with self._lock:
            self._pending = []
            self._pending_nodes = {}
            self._counts["committed"] += len(samples)
            self._last_commit = (self.wall_clock(), elapsed_ms)
            self._recovered("commit")
        if newest:
            self.on_durable([Durable(node, inst, seq) for (node, inst), seq in newest.items()])
        return True

    def _maintain(self) -> None:
        try:
            report = self.backend.maintain(self.wall_clock())
        except StoreWriteError as exc:
            self._failed("maintain", f"store maintenance failed: {exc}")
            return
        if report.more_work:  # consolidation hit its time budget: go on after the next commit
            self._next_maintain = self.clock()
        if report.late_dropped:
            log.warning("store: %d replayed samples were older than raw retention; not kept", report.late_dropped)
        with self._lock:
            self._recovered("maintain")

    def _failed(self, kind: str, reason: str) -> None:
        with self._lock:
            if not self._failures:
                log.error("store: degraded: %s", reason)
                self._since_at = self.wall_clock()
            self._failures[kind] = reason
            self._counts["failures"] += 1
            if kind == "commit":
                self._retry_s = min(RETRY_MAX_S, self._retry_s * 2)

    def _recovered(self, kind: str) -> None:
        """Called with the lock held after a success of ``kind``."""
        if self._failures.pop(kind, None) is not None:
            log.warning("store: %s recovered (%d failed attempts so far)", kind, self._counts["failures"])
            if not self._failures:
                self._since_at = self.wall_clock()
        if kind == "commit":
            self._retry_s = RETRY_S
