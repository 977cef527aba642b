"""``ProcessWriter``: the store's writes in a child process, so encoding, SQLite and compaction never hold our GIL.

As a thread, the writer's Python work shared the loop's GIL and core at 10,000 nodes (docs/store.md).
The child (``collector.store.child``) runs ``StoreWriter`` on the other core; this keeps its interface.

- The loop's ``append_slot`` appends a plain tuple (``Record``) and counts it. A sender thread pickles
  what queued every ``SEND_INTERVAL_S`` in one call, with new slots' names and the registry puts, into
  a socketpair (plain tuples pickle in C). A receiver thread hands the child's commit reports,
  ``array("q")`` (slot, seq) pairs, to ``on_slots`` (or as ``Durable`` lists to ``on_durable``).
- The queue bound is kept here: samples appended but not yet reported committed. The child's own
  queue never refuses, so nothing the gate counts as accepted is dropped there.
- An ack still follows a commit: only the child's commit report moves ``durable``.
- If the child dies, health says degraded with the exit status, ``append`` refuses (the gate stops
  acking: agents keep their backlogs). Samples it held uncommitted were never acked, so no acked
  sample is lost. With a ``RestartPolicy`` (``collector.store.restart``) a new child starts after a
  backoff, and ``on_exit`` lets the shell hole the nodes whose samples died with it (``lost``).
- The child dies with us (``PR_SET_PDEATHSIG``): a kill -9 of the collector leaves no writer behind.

Not here: SQL, the commit loop (``collector.store.writer``, in the child), ack rules.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import pickle
import subprocess
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from collector.store.durability import StoreHealth, accepting, health_reason
from collector.store.model import Durable, Sample
from collector.store.restart import RestartPolicy, exit_reason, spawn_child
from collector.store.writer import QUEUE_MAX, RegistryPuts

log = logging.getLogger("nodewatch.collector.store")

# The sender hands queued samples to the child this often: an ack waits for its commit (~1 s) anyway,
# and 0.1 s keeps each message to ~1,000 samples at 10,000 nodes (~70 KB pickled).
SEND_INTERVAL_S = 0.1
# How long close() waits for the child's last commit and exit before it kills it.
CLOSE_TIMEOUT_S = 15.0
_HEALTH_FIELDS = {f.name for f in fields(StoreHealth)}
# One queued sample as the child takes it: slot (``RegistryPuts.slot``), seq, sampled_at, values.
Record = tuple[int, int, float, Sequence[float | None]]


class ProcessWriter(RegistryPuts):
    """The parent's handle on the writer process; every public method is safe from any thread."""

    def __init__(
        self,
        data_dir: Path,
        sync: str,
        on_durable: Callable[[list[Durable]], None],
        *,
        on_slots: Callable[[array[int]], None] | None = None,
        queue_max: int = QUEUE_MAX,
        send_interval_s: float = SEND_INTERVAL_S,
        wall_clock: Callable[[], float] = time.time,
        policy: RestartPolicy | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        """``on_slots``: commit reports as flat (slot, seq) pairs. ``policy``: restart a dead child (None: never).

        ``on_exit`` runs on the receiver thread when the child died, to have ``lost`` called on the loop.
        """
        self.data_dir, self.sync, self.on_durable, self.on_slots = data_dir, sync, on_durable, on_slots
        self.policy, self.on_exit = policy, on_exit
        self.queue_max, self.send_interval_s, self.wall_clock = queue_max, send_interval_s, wall_clock
        self._records: list[Record] = []  # the sender takes them from the front
        self._init_registry()
        self._names_sent = 0  # sender thread only: the child has been told the names of slots below this
        # Loop thread only; the children's count (receiver thread); what dead children committed; refused.
        self._appended = self._committed = self._base = self._refused = 0
        self._restart_s = 0.0  # the delay ``lost`` arms the restart with
        self._max_bytes: tuple[Any, ...] | None = None  # the last quota op: a new child gets it again
        self._life = threading.RLock()  # a restart against close (a failed start re-arms inside it)
        self._timer: threading.Timer | None = None  # the pending restart (``lost`` arms it)
        self._ops: list[tuple[Any, ...]] = []  # flush, max_bytes, close: sent after the samples before them
        self._flushes: dict[int, tuple[threading.Event, list[bool]]] = {}
        self._tokens = itertools.count(1)
        self._child: dict[str, Any] = {}  # the child's last health report
        self._failures: dict[str, str] = {}
        self._failure: str | None = None  # the child is gone or never started: degraded until restart
        self._since_at = wall_clock()
        self._closing = self._closing_started = False  # started: close() began, no restart from now on
        self._closed, self._wake = threading.Event(), threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the child and the two threads that talk to it."""
        resume = self.policy is not None and self.policy.restarts > 0
        self._proc, self._conn = spawn_child(self.data_dir, self.sync, resume=resume)
        with self._lock:  # after a restart: appends go to the new child from now on
            self._failure, self._since_at = None, self.wall_clock()
        if self.policy is not None:
            self.policy.started()
        for name, target in (("sender", self._send_loop), ("receiver", self._receive_loop)):
            thread = threading.Thread(target=target, name=f"nodewatch-store-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def pid(self) -> int | None:
        """The writer process's pid, once started (for an operator's ps and py-spy)."""
        return None if self._proc is None else self._proc.pid

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Commit what is left, stop the child and the threads; what could not be written is counted lost."""
        with self._life:  # a pending restart is cancelled; one under way has finished
            self._closing_started = True
            if self._timer is not None:
                self._timer.cancel()
        if self._proc is None:
            return
        if self._failure is None:
            self.flush(timeout_s)
        with self._lock:
            self._ops.append(("close", timeout_s))
        self._wake.set()
        if self._failure is None:  # a dead child says nothing more
            self._closed.wait(timeout_s)
        with self._lock:
            self._closing = True
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("store: the writer process did not exit in %.0f s; killing it", timeout_s)  # noqa: TRY400 - no traceback to add
            self._proc.kill()
            self._proc.wait()
        self._wake.set()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        for thread in self._threads:
            thread.join(timeout_s)

    def append_slot(self, slot: int, seq: int, sampled_at: float, values: Sequence[float | None]) -> bool:
        """Queue a sample of ``slot``; False (and counted) if the queue is full or the child is gone: do not ack it."""
        if self._failure is not None or self._appended - self._committed >= self.queue_max:
            self._refused += 1
            return False
        self._records.append((slot, seq, sampled_at, values))
        self._appended += 1
        return True

    def retire(self, slot: int) -> None:
        """The gate is done with ``slot``: the child forgets its names after the records that use it."""
        with self._lock:
            key = self._names.get(slot)
            if key is not None and self._slots.get(key) == slot:
                del self._slots[key]
            self._ops.append(("retire", slot))

    def append(self, sample: Sample) -> bool:
        """``append_slot`` for a ``Sample``."""
        slot = self.slot(sample.node_id, sample.instance_id)
        return self.append_slot(slot, sample.seq, sample.sampled_at, sample.values)

    def set_max_bytes(self, max_bytes: int | None) -> None:
        """The child's ``SqliteEngine.max_bytes`` (a quota), from the next commit on."""
        with self._lock:
            self._max_bytes = ("max_bytes", max_bytes)
            self._ops.append(self._max_bytes)
        self._wake.set()

    def accepting(self) -> bool:
        """Whether refused samples may be replayed now: no failing write, and the queue half empty at most."""
        with self._lock:
            return accepting(self._outstanding(), self.queue_max, self._commit_failure())

    def health(self) -> StoreHealth:
        """The store's state for /api/v1/health: the child's last report, with the queue counted here."""
        with self._lock:
            child, queued = self._child, self._outstanding()
            reason = health_reason(queued, self.queue_max, self._commit_failure()) or self._failures.get("maintain")
            return StoreHealth(
                status="ok" if reason is None else "degraded",
                reason=reason,
                since_at=self._since_at if self._failure is not None else child.get("since_at", self._since_at),
                queued=queued,
                queue_capacity=self.queue_max,
                pending=child.get("pending", 0),
                committed_samples=self._committed,
                refused_samples=self._refused,
                lost_samples=child.get("lost_samples", 0),
                commit_failures=child.get("commit_failures", 0),
                last_commit_at=child.get("last_commit_at"),
                last_commit_ms=child.get("last_commit_ms"),
                restarts=0 if self.policy is None else self.policy.restarts,
            )

    def _outstanding(self) -> int:
        return self._appended - self._committed

    def _commit_failure(self) -> str | None:
        return self._failure or self._failures.get("commit")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Commit everything appended so far; True once the child reports it durable."""
        token, done = next(self._tokens), threading.Event()
        result: list[bool] = []
        with self._lock:
            if self._failure is not None:
                return False
            self._flushes[token] = (done, result)
            self._ops.append(("flush", token, timeout_s))
        self._wake.set()
        done.wait(timeout_s + 1.0)
        with self._lock:
            self._flushes.pop(token, None)
        return bool(result and result[0])

    def _send_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            self._wake.wait(self.send_interval_s)
            self._wake.clear()
            records = self._records
            n = len(records)  # the loop appends behind these meanwhile: list appends and this del are atomic
            batch = records[:n]
            del records[:n]
            with self._lock:  # after the records: every slot they use is named by now
                named = self._names
                names = [(k, *named[k]) for k in range(self._names_sent, self._slot_count) if k in named]
                self._names_sent = self._slot_count
                nodes, self._nodes = self._nodes, {}
                ops, self._ops = self._ops, []
                for op in ops:  # a retired slot's name was sent above, with any record still using it
                    if op[0] == "retire":
                        named.pop(op[1], None)
                if self._closing or self._failure is not None:
                    return
            try:
                if batch or nodes or names:
                    conn.send_bytes(pickle.dumps(("write", names, nodes, batch), pickle.HIGHEST_PROTOCOL))
                for op in ops:
                    conn.send_bytes(pickle.dumps(op, pickle.HIGHEST_PROTOCOL))
            except OSError:
                return  # the child is gone: the receiver reports it

    def _receive_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            try:
                message = pickle.loads(conn.recv_bytes())  # noqa: S301 - our child's socketpair, no one else's
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "slots":
                self._report(array("q", message[1]))
            elif kind == "state":
                self._state(message[1], message[2])
            elif kind == "flushed":
                with self._lock:
                    waiter = self._flushes.get(message[1])
                if waiter is not None:
                    waiter[1].append(message[2])
                    waiter[0].set()
            elif kind == "closed":
                self._state(message[1], message[2])
                self._closed.set()
            elif kind == "fatal":
                self._gone(f"store writer process could not open the store: {message[1]}")
        self._gone(None)

    def _report(self, pairs: array[int]) -> None:
        if self.on_slots is not None:
            self.on_slots(pairs)
            return
        with self._lock:
            names = [(self._names.get(slot), seq) for slot, seq in zip(pairs[::2], pairs[1::2], strict=True)]
        self.on_durable([Durable(*name, seq) for name, seq in names if name is not None])

    def _state(self, health: dict[str, Any], failures: dict[str, str]) -> None:
        with self._lock:
            self._child = {k: v for k, v in health.items() if k in _HEALTH_FIELDS}
            self._committed = self._base + int(health.get("committed_samples", 0))
            self._failures = dict(failures)

    def _gone(self, reason: str | None) -> None:
        """The child ended: expected while closing; otherwise degraded for good, and every flush answered False."""
        if reason is None:
            if self._closed.is_set():
                return
            code = None
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._proc.wait(1.0)
            reason = f"store writer process exited (status {code})"
        with self._lock:
            if self._failure is not None or self._closing:
                return
            self._failure, self._restart_s = exit_reason(reason, self.policy)
            self._since_at = self.wall_clock()
            waiters = list(self._flushes.values())
        log.error("store: degraded: %s", self._failure)
        for done, _ in waiters:
            done.set()
        if self.on_exit is not None:
            self.on_exit()
        else:
            self.lost()

    def lost(self) -> None:
        """On the loop, after ``AckGate.lost``: what the dead child held uncommitted (never acked) is gone."""
        del self._records[:]
        self._appended = self._committed
        with self._life:
            if self.policy is None or self._closing_started:
                return
            self._timer = threading.Timer(self._restart_s, self._restart)
            self._timer.daemon = True
            self._timer.start()

    def _restart(self) -> None:
        """On the timer's thread: the old threads done, a new child gets every live slot's name and the quota again."""
        for thread in self._threads:
            thread.join(CLOSE_TIMEOUT_S)
        with self._life:
            if self._closing_started or self.policy is None:
                return
            if self._proc is not None:
                self._proc.wait()
            with self._lock:
                self._threads, self._names_sent, self._base = [], 0, self._committed
                ops = [op for op in self._ops if op[0] == "retire"]  # flushes were answered False
                self._ops = ops if self._max_bytes is None else [self._max_bytes, *ops]
                self._child, self._failures = {}, {}
            self.policy.restarted()
            try:
                self.start()
                log.warning("store: writer process restarted (pid %s, restart %d)", self.pid, self.policy.restarts)
            except OSError as exc:  # no process or fd left: still degraded, try again later
                self._failure, self._restart_s = exit_reason(f"store writer could not start: {exc}", self.policy)
                self.lost()
