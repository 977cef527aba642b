"""The SQLite backend of the store: writes and maintenance. stdlib ``sqlite3``, WAL, one writer thread.

Layout (docs/store.md). Every commit appends one row to one of two head tables: that commit's
samples of every node as one columnar blob (``codec.Batch``), about one page per few hundred
samples. ``maintain`` compacts the head not being written: per node and hour, a raw chunk
(``codec.encode_raw``) plus partial 1-min and 1-h buckets; then it empties that head with one
``DELETE`` (SQLite truncates a table deleted without WHERE: no row-by-row work). Once a segment
has closed, its partial rows are consolidated into one; expired chunks leave whole, per tier.

Durability: WAL with ``synchronous=NORMAL`` keeps every commit through a process crash
(kill -9) but may lose the last commits on power loss; ``synchronous="FULL"`` also fsyncs
the WAL at every commit (https://sqlite.org/wal.html, https://sqlite.org/pragma.html#pragma_synchronous).

SQL lives here, in ``sqlite_reader`` (reads) and ``sqlite_schema`` (DDL), nowhere else.
Not here: the thread (``collector.store.writer``), policy maths, encoding.
"""

# ruff: noqa: S608 - f-strings here insert only our own table and column names; every value is bound.
from __future__ import annotations

import bisect
import contextlib
import math
import operator
import os
import sqlite3
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from collector.store import assemble, codec, model
from collector.store.codec import Batch, Columns
from collector.store.datadir import stamp_lock, take_lock
from collector.store.policy import Buckets, RetentionPolicy, merge_buckets
from collector.store.sqlite_reader import ROW_COLUMNS, SqliteReader, decode_heads
from collector.store.sqlite_schema import Txn, open_database

DB_NAME = "nodewatch.db"
# The head being written is swapped for the other (empty) one after this long: it bounds the
# uncompressed-by-node data (two windows of batches) and how stale the compacted chunks are.
HEAD_WINDOW_S = 120.0
# A node's last_seen_at is refreshed at most this often by commits (and at every registry put):
# after a kill -9 "last seen" is at most this early.
PROGRESS_EVERY_S = 10.0
# One maintain() call consolidates segments for at most this long, then lets commits through.
MAINTAIN_BUDGET_S = 0.2
Sync = Literal["NORMAL", "FULL"]
_BY_NODE = operator.itemgetter(0, 1, 2)  # a head batch's order: node, instance, seq


class SqliteEngine:
    """A ``StoreBackend`` on ``<data_dir>/nodewatch.db``, holding ``<data_dir>/collector.lock``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        policy: RetentionPolicy | None = None,
        sync: Sync = "NORMAL",
        wall_clock: Callable[[], float] = time.time,
        head_window_s: float = HEAD_WINDOW_S,
        max_bytes: int | None = None,
        rate_mantissa_bits: int = 23,
        locked_by_caller: bool = False,
    ) -> None:
        """``locked_by_caller``: the writer process, whose parent holds the data dir's lock (and checked the file)."""
        self.data_dir = data_dir
        self.path = data_dir / DB_NAME
        self.policy = policy or RetentionPolicy()
        self.wall_clock = wall_clock
        self.head_window_s = head_window_s
        # 23: rates exactly as the ring keeps them (float32); fewer trade precision for size (codec.quantize_rates).
        self.rate_mantissa_bits = rate_mantissa_bits
        self._lock_fd = -1 if locked_by_caller else take_lock(data_dir)
        try:
            self._conn = open_database(self.path, sync, wall_clock(), check=not locked_by_caller)
            self.reader = SqliteReader(self.path, self.policy)
            if not locked_by_caller:
                stamp_lock(self._lock_fd)
        except BaseException:
            self._release()
            raise
        self._head_opened_at = wall_clock()
        self._reload()
        self._progress_at: dict[int, float] = {}
        self._max_bytes: int | None = None
        self.max_bytes = max_bytes

    def _reload(self) -> None:
        """Read the ids and head state the engine caches; after a failed transaction, to forget its effects."""
        self._idx: dict[str, int] = dict(self._conn.execute("SELECT node_id, node_idx FROM nodes").fetchall())
        self._inst: dict[tuple[int, str], int] = {
            (n, i): k for k, n, i in self._conn.execute("SELECT inst_idx, node_idx, instance_id FROM instances")
        }
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        self._head = int(meta.get("head_current", "0"))
        self._head_opened_at = float(meta.get("head_opened_at", self._head_opened_at))

    def _failure(self, exc: sqlite3.Error) -> model.StoreWriteError:
        with contextlib.suppress(sqlite3.Error):  # a dead disk may fail this too; the next write retries it
            self._reload()
        full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        return model.StoreWriteError(f"{'disk full' if full else 'write failed'}: {exc} ({self.path})", disk_full=full)

    def _apply_max_bytes(self) -> None:
        """Cap the file at ``max_bytes`` (a quota: past it, commits fail with SQLITE_FULL), at the next write."""
        if self.max_bytes == self._max_bytes:
            return
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        # 2**31 - 2 pages is SQLite's own ceiling: the pragma's way of saying "no cap".
        pages = 2**31 - 2 if self.max_bytes is None else max(1, self.max_bytes // page_size)
        self._conn.execute(f"PRAGMA max_page_count = {pages}")
        self._max_bytes = self.max_bytes

    # ---- write -----------------------------------------------------------------------------

    def write(
        self, samples: Sequence[model.Sample], nodes: Sequence[model.NodeRow], forgotten: Sequence[str] = ()
    ) -> None:
        """Append ``samples``, upsert ``nodes``, mark ``forgotten``: one transaction, durable per ``synchronous``."""
        try:
            self._apply_max_bytes()
            with Txn(self._conn):
                due = self._write(samples, nodes)
                self._conn.executemany(
                    "UPDATE nodes SET forgotten_at = ? WHERE node_id = ?", [(self.wall_clock(), n) for n in forgotten]
                )
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc
        self._progress_at.update(dict.fromkeys(due, self.wall_clock()))

    def _write(self, samples: Sequence[model.Sample], nodes: Sequence[model.NodeRow]) -> list[int]:
        now = self.wall_clock()
        for row in nodes:
            self._put(row)
        self._rotate_if_due(now)
        if not samples:
            return []
        keyed = []
        node_of, inst_of = self._node_idx, self._inst_idx
        for node_id, instance_id, seq, sampled_at, values in samples:
            node_idx = node_of(node_id, instance_id)
            keyed.append((node_idx, inst_of(node_idx, instance_id), seq, sampled_at, values))
        keyed.sort(key=_BY_NODE)
        cols = Columns.from_values([k[2] for k in keyed], [k[3] for k in keyed], [k[4] for k in keyed])
        codec.quantize_rates(cols, self.rate_mantissa_bits)
        batch = Batch(array("I", [k[0] for k in keyed]), array("I", [k[1] for k in keyed]), cols)
        at = [k[3] for k in keyed]
        self._conn.execute(
            f"INSERT INTO head_{self._head} (first_at, last_at, n, data) VALUES (?, ?, ?, ?)",
            (min(at), max(at), len(keyed), codec.encode_batch(batch)),
        )
        due = sorted({k[0] for k in keyed if now - self._progress_at.get(k[0], -math.inf) >= PROGRESS_EVERY_S})
        self._conn.executemany("INSERT OR REPLACE INTO progress VALUES (?, ?)", [(n, now) for n in due])
        return due

    def _put(self, row: model.NodeRow) -> None:
        values = (row.instance_id, row.facts, row.interval_s, row.state, row.state_since_at, row.reason,
                  row.last_seen_at, row.last_seq, row.missing_samples, row.dropped_samples, row.last_sample,
                  row.key_fingerprint, row.labels)  # fmt: skip
        sets = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in ROW_COLUMNS.split(","))
        cur = self._conn.execute(
            f"INSERT INTO nodes (node_id, {ROW_COLUMNS}) VALUES (?, {', '.join('?' * len(values))}) "
            f"ON CONFLICT (node_id) DO UPDATE SET {sets}, forgotten_at = NULL RETURNING node_idx",
            (row.node_id, *values),
        )
        self._idx[row.node_id] = cur.fetchone()[0]

    def _node_idx(self, node_id: str, instance_id: str) -> int:
        idx = self._idx.get(node_id)
        if idx is None:  # a sample before its node's registry put: keep it under a placeholder row
            self._put(model.NodeRow(node_id, instance_id, b"", 1.0, "online", self.wall_clock()))
            idx = self._idx[node_id]
        return idx

    def _inst_idx(self, node_idx: int, instance_id: str) -> int:
        key = (node_idx, instance_id)
        idx = self._inst.get(key)
        if idx is None:
            cur = self._conn.execute(
                "INSERT INTO instances (node_idx, instance_id) VALUES (?, ?) RETURNING inst_idx", key
            )
            idx = self._inst[key] = cur.fetchone()[0]
        return idx

    def _rotate_if_due(self, now: float) -> bool:
        """Inside a transaction: write the other head from now on, if this one's window is over and that one empty."""
        if now - self._head_opened_at < self.head_window_s:
            return False
        if self._conn.execute(f"SELECT 1 FROM head_{1 - self._head} LIMIT 1").fetchone() is not None:
            return False
        self._head, self._head_opened_at = 1 - self._head, now
        self._conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("head_current", str(self._head)), ("head_opened_at", repr(now))],
        )
        return True

    # ---- maintenance -----------------------------------------------------------------------

    def maintain(self, now_at: float, budget_s: float = MAINTAIN_BUDGET_S) -> model.MaintenanceReport:
        """Compact the idle head, consolidate closed segments for about ``budget_s``, drop expired chunks."""
        try:
            return self._maintain(now_at, budget_s)
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc
        except ValueError as exc:  # a chunk or batch that does not decode: bit rot, or a bug
            with contextlib.suppress(sqlite3.Error):
                self._reload()
            raise model.StoreWriteError(f"damaged data: {exc} ({self.path})", disk_full=False) from exc

    def _maintain(self, now_at: float, budget_s: float) -> model.MaintenanceReport:
        compacted, chunks, late = self._compact(1 - self._head, now_at)
        with Txn(self._conn):
            # No writes for a whole window (a quiet fleet) must not leave samples in the head forever.
            rotated = self._rotate_if_due(self.wall_clock())
        if rotated:
            more = self._compact(1 - self._head, now_at)
            compacted, chunks, late = compacted + more[0], chunks + more[1], late + more[2]
        consolidated, more_work = self._consolidate(now_at, time.perf_counter() + budget_s)
        dropped = {}
        with Txn(self._conn):
            for level, tier in enumerate(self.policy.tiers):
                cutoff = tier.drop_before(now_at)
                cur = self._conn.execute("DELETE FROM chunks WHERE tier = ? AND chunk_start < ?", (level, cutoff))
                dropped[tier.name] = cur.rowcount
                self._conn.execute("DELETE FROM pending WHERE tier = ? AND span_start < ?", (level, cutoff))
        return model.MaintenanceReport(compacted, chunks, consolidated, dropped, late, more_work)

    def _compact(self, head: int, now_at: float) -> tuple[int, int, int]:
        """Head ``head``'s batches -> per node, instance and segment: one raw chunk, and partial buckets per tier."""
        blobs = [blob for (blob,) in self._conn.execute(f"SELECT data FROM head_{head} ORDER BY id")]
        if not blobs:
            return 0, 0, 0
        runs = decode_heads(blobs)
        raw = self.policy.tiers[0]
        floor_us = round(raw.drop_before(now_at) * 1e6)
        total = chunks = late = 0
        with Txn(self._conn):
            for (node_idx, inst_idx), run in runs.items():
                total += len(run)
                first = bisect.bisect_left(run.at_us, floor_us)
                late += first
                cols = run.slice(first, len(run))
                for lo, hi, span in _segments(cols, raw.segment_s):
                    self._insert(0, node_idx, inst_idx, span, cols.slice(lo, hi), zlevel=codec.FAST)
                    chunks += 1
                for level, tier in enumerate(self.policy.tiers[1:], start=1):
                    for lo, hi, span in _segments(cols, tier.segment_s):
                        buckets = assemble.rollup_columns(cols.slice(lo, hi), tier.step_s)
                        self._insert(level, node_idx, 0, span, buckets, zlevel=codec.FAST)
            self._conn.execute(f"DELETE FROM head_{head}")
        return total, chunks, late

    def _insert(
        self, level: int, node_idx: int, inst_idx: int, span: float, data: Columns | Buckets, *, zlevel: int
    ) -> None:
        """One (partial) row of a segment; the segment is marked for consolidation if it now has several."""
        tier = self.policy.tiers[level]
        if isinstance(data, Columns):
            first_at, last_at, last_seq = data.at_us[0] / 1e6, data.at_us[-1] / 1e6, max(data.seq)
            blob = codec.encode_raw(data, zlevel)
        else:
            first_at, last_at, last_seq = data.start[0], data.start[-1], 0
            blob = codec.encode_buckets(data, zlevel)
        cur = self._conn.execute(
            "INSERT INTO chunks (tier, node_idx, inst_idx, chunk_start, span_start, first_at, last_at, n, last_seq, "
            "data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (level, node_idx, inst_idx, tier.chunk_start(span), span, first_at, last_at, len(data), last_seq, blob),
        )
        new_id = cur.fetchone()[0]
        older = self._conn.execute(
            "SELECT 1 FROM chunks WHERE node_idx = ? AND tier = ? AND span_start = ? AND id != ? LIMIT 1",
            (node_idx, level, span, new_id),
        ).fetchone()
        if older is not None:
            self._conn.execute("INSERT OR IGNORE INTO pending VALUES (?, ?, ?)", (level, node_idx, span))

    def _consolidate(self, now_at: float, deadline: float) -> tuple[int, bool]:
        """Merge the partial rows of closed segments into one row each, until ``deadline`` (perf_counter)."""
        done = 0
        todo = self._conn.execute("SELECT tier, node_idx, span_start FROM pending ORDER BY span_start").fetchall()
        todo = [t for t in todo if self.policy.closed(self.policy.tiers[t[0]], t[2], now_at)]
        while todo and time.perf_counter() < deadline:
            with Txn(self._conn):
                for level, node_idx, span in todo[:100]:
                    self._merge_segment(level, node_idx, span)
                    done += 1
            todo = todo[100:]
        return done, bool(todo)

    def _merge_segment(self, level: int, node_idx: int, span: float) -> None:
        where = "WHERE node_idx = ? AND tier = ? AND span_start = ?"
        rows = self._conn.execute(f"SELECT inst_idx, data FROM chunks {where}", (node_idx, level, span)).fetchall()
        self._conn.execute(f"DELETE FROM chunks {where}", (node_idx, level, span))
        self._conn.execute(f"DELETE FROM pending {where}", (node_idx, level, span))
        if level == 0:
            per_inst: dict[int, list[Columns]] = {}
            for inst_idx, blob in rows:
                per_inst.setdefault(inst_idx, []).append(codec.decode_raw(blob))
            for inst_idx, raw_parts in per_inst.items():
                merged = assemble.merged(raw_parts, -math.inf, math.inf)
                self._insert(0, node_idx, inst_idx, span, merged, zlevel=codec.SMALL)
            return
        buckets = Buckets.empty(len(codec.TYPECODES))
        for _, blob in rows:
            buckets.extend(codec.decode_buckets(blob))
        merged_buckets = merge_buckets(buckets, self.policy.tiers[level].step_s)
        self._insert(level, node_idx, 0, span, merged_buckets, zlevel=codec.SMALL)

    # ---- reads and close -------------------------------------------------------------------

    def query(self, node_id: str, from_at: float, to_at: float, step_s: float, now_at: float) -> model.RangeResult:
        """One node's history (``SqliteReader.query``)."""
        return self.reader.query(node_id, from_at, to_at, step_s, now_at)

    def load_nodes(self) -> list[model.NodeRow]:
        """The registry (``SqliteReader.load_nodes``)."""
        return self.reader.load_nodes()

    def load_recent(self, since_at: float) -> dict[str, model.RawPoints]:
        """Each node's recent raw points (``SqliteReader.load_recent``)."""
        return self.reader.load_recent(since_at)

    def close(self) -> None:
        """Close both connections (the last one out checkpoints the WAL), release the lock."""
        try:
            self.reader.close()
            self._conn.close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _segments(cols: Columns, segment_s: float) -> list[tuple[int, int, float]]:
    """(lo, hi, segment start) of each segment the time-sorted ``cols`` touch."""
    out, lo, step_us = [], 0, round(segment_s * 1e6)
    while lo < len(cols):
        start_us = cols.at_us[lo] // step_us * step_us
        hi = bisect.bisect_left(cols.at_us, start_us + step_us, lo)
        out.append((lo, hi, start_us / 1e6))
        lo = hi
    return out
