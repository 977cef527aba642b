"""The store's writer process: ``python -m collector.store.child``, started by ``collector.store.proc``.

It runs the ordinary ``StoreWriter`` on its own ``SqliteEngine`` (the parent holds the
data dir's lock and checked the file), fed through the socketpair the parent passed as
``--fd``. In: ``("write", new slots, registry puts, records)`` (``[(slot, node, instance)]``,
then ``proc.Record`` tuples), ``("flush", token, timeout_s)``,
``("max_bytes", n)``, ``("close", timeout_s)``. Out: ``("slots", bytes)`` after each commit
(an ``array("q")`` of (slot, highest committed seq) pairs), ``("state", health, failures)``
after each commit attempt, ``("flushed", token, ok)``, ``("closed", health, failures)``,
``("fatal", reason)``.

Started again after a predecessor died (``--resume``), it reads the highest stored seq of each
node's current instance at its first write, and skips a replayed sample at or below it: the dead
child may have committed samples it never reported, so the gate never acked them and the agent
sends them again.

It dies with its parent (``PR_SET_PDEATHSIG``, Linux), and leaves SIGINT and SIGTERM to
the parent, which shuts it down in order (a final commit, then ``close``).

Not here: the queue bound and the ack rules (the parent's), SQL (``sqlite_engine``).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import pickle
import signal
import sys
import threading
from array import array
from collections.abc import Sequence
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from collector.store.model import Durable, NodeRow, Sample, StoreOpenError
from collector.store.proc import Record
from collector.store.sqlite_engine import SqliteEngine
from collector.store.writer import StoreWriter

log = logging.getLogger("nodewatch.collector.store")

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# The parent bounds the queue (samples not yet committed); the child's own bound must never refuse one.
UNBOUNDED = sys.maxsize
# The writer runs below the collector's priority: on a busy host its compaction (seconds of CPU a
# minute at 10,000 nodes) took the event loop's core and lagged it ~1 s (docs/store.md). At nice 5
# its CFS weight is 335 against 1024: a third of a core while two busy processes share two cores,
# above the ~15 % it needs on average; its queue (20 s) absorbs the rest, and acks wait meanwhile.
WRITER_NICE = 5
# A restarted child commits the parent's registry rows before it reads the floors: one commit, a generous wait.
RESUME_FLUSH_S = 30.0


def die_with_parent(parent_pid: int) -> bool:
    """Ask for SIGKILL when the parent dies; False if it is already gone (then the request came too late)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent_pid


class Child:
    """The writer and its pipe; ``serve`` runs until the parent says close or goes away."""

    def __init__(self, conn: Connection, engine: SqliteEngine, *, resume: bool = False) -> None:
        """``resume``: a restart; samples at or below the highest stored seq of their slot are skipped."""
        self.conn = conn
        self.engine = engine
        self._resume = resume  # the floors are read at the first write, once its registry rows are committed
        self._floor: dict[int, int] = {}  # slot -> the highest seq stored of its (node, instance)
        self._send_lock = threading.Lock()
        self._names: dict[int, tuple[str, str]] = {}  # slot -> (node, instance), as the parent numbered them
        self._slots: dict[tuple[str, str], int] = {}
        self.writer = StoreWriter(engine, self._durable, queue_max=UNBOUNDED, on_cycle=self._report)

    def send(self, message: tuple[Any, ...]) -> None:
        """One message to the parent (from the writer thread or the main one)."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self.conn.send_bytes(data)

    def _durable(self, durables: list[Durable]) -> None:
        slots, pairs = self._slots, array("q")
        for node_id, instance_id, seq in durables:
            slot = slots.get((node_id, instance_id))
            if slot is not None:  # None: retired meanwhile, the parent's gate no longer asks
                pairs.append(slot)
                pairs.append(seq)
        self.send(("slots", pairs.tobytes()))

    def _report(self) -> None:
        self.send(("state", asdict(self.writer.health()), self.writer.failures()))

    def serve(self) -> None:
        """Take the parent's messages until ``close``; a closed pipe means the parent died: exit at once."""
        self.writer.start()
        while True:
            try:
                message = pickle.loads(self.conn.recv_bytes())  # noqa: S301 - our parent's socketpair, no one else's
            except (EOFError, OSError):
                os._exit(0)  # nothing uncommitted here was ever acked; the next collector takes over the file
            kind = message[0]
            if kind == "write":
                self._write(message[1], message[2], message[3])
            elif kind == "flush":
                self.send(("flushed", message[1], self.writer.flush(message[2])))
            elif kind == "retire":
                key = self._names.pop(message[1], None)
                if key is not None and self._slots.get(key) == message[1]:
                    del self._slots[key]
            elif kind == "max_bytes":
                self.engine.max_bytes = message[1]
            elif kind == "close":
                self.writer.close(message[1])
                self.send(("closed", asdict(self.writer.health()), self.writer.failures()))
                return

    def _write(
        self, names: list[tuple[int, str, str]], nodes: dict[str, NodeRow | None], records: list[Record]
    ) -> None:
        """New slots' names, then the samples, then the registry puts (None: forget), as the parent sent them."""
        by_slot, append = self._names, self.writer.append
        for slot, node_id, instance_id in names:
            by_slot[slot] = key = (node_id, instance_id)
            self._slots[key] = slot
        if self._resume:
            self._resume = False
            self._read_floors(nodes)
            nodes = {}
        floor = self._floor
        for slot, seq, sampled_at, values in records:
            if floor and seq <= floor.get(slot, 0):
                continue  # the dead child committed it and never said so: stored once is enough
            append(Sample(*by_slot[slot], seq, sampled_at, tuple(values)))
        self._put_rows(nodes)

    def _read_floors(self, nodes: dict[str, NodeRow | None]) -> None:
        """The first write after a restart: commit the parent's rows, then read each slot's highest stored seq.

        ``load_nodes`` falls back on a row's ``last_seq`` when no sample of the instance is stored, and
        a dead child's row could be ahead of its samples; the parent's rows (``last_seq``: the gate's
        durable seq) go in first, so such a floor never skips a sample the store lacks.
        """
        self._put_rows(nodes)
        self.writer.flush(RESUME_FLUSH_S)
        stored = {(row.node_id, row.instance_id): row.last_seq for row in self.engine.load_nodes()}
        self._floor = {slot: stored[key] for key, slot in self._slots.items() if key in stored}

    def _put_rows(self, nodes: dict[str, NodeRow | None]) -> None:
        for node_id, row in nodes.items():
            if row is None:
                self.writer.forget_node(node_id)
            else:
                self.writer.put_node(row)


def main(argv: Sequence[str] | None = None) -> int:
    """Open the engine on the parent's data dir and serve its pipe."""
    parser = argparse.ArgumentParser(description="nodewatch's store writer process (started by the collector)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--sync", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--resume", action="store_true", help="a restart: skip samples already stored")
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    if not die_with_parent(args.parent_pid):
        return 1
    os.nice(WRITER_NICE)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s (writer process): %(message)s")
    conn = Connection(args.fd)
    try:
        engine = SqliteEngine(args.data_dir, sync=args.sync, locked_by_caller=True)
    except StoreOpenError as exc:
        conn.send_bytes(pickle.dumps(("fatal", str(exc))))
        return 2
    Child(conn, engine, resume=args.resume).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
