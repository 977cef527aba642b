"""The SQLite backend of the store: the only module with SQL. stdlib ``sqlite3``, WAL, one writer.

Layout (docs/store.md): every commit appends raw samples to one of two head tables,
one row per sample (Prometheus's head). ``maintain`` compacts the head not being
written into per-node columnar chunks (``collector.store.codec``), then empties it
with one ``DELETE`` (SQLite truncates a table deleted without WHERE in one step).
Closed hours become 1-min buckets, closed days 1-h buckets; expired chunks leave
whole, per tier.

Durability: WAL with ``synchronous=NORMAL`` survives a process crash (kill -9) but may
lose the last commits on power loss; ``synchronous="FULL"`` fsyncs every commit
(https://sqlite.org/wal.html, https://sqlite.org/pragma.html#pragma_synchronous).

Not here: the thread (``collector.store.writer``), policy maths, encoding.
"""

# ruff: noqa: S608 - f-strings here insert only our own table and column names; every value is bound.
from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from collector.store import codec, model
from collector.store.datadir import REMEDY_CORRUPT, REMEDY_DIR, REMEDY_FOREIGN, SQLITE_HEADER, take_lock
from collector.store.policy import Buckets, RetentionPolicy, merge_buckets, rollup_points
from collector.store.sqlite_reader import ROW_COLUMNS, VALUE_COLUMNS, SqliteReader
from collector.store.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION, Txn, migrate

DB_NAME = "nodewatch.db"
# The head table being written is swapped for the other (empty) one after this long: it bounds
# the uncompressed rows on disk (2 x 120 s of samples) and how stale the compacted chunks are.
HEAD_WINDOW_S = 120.0
# A node's last_seq and last_seen_at in the registry are refreshed at most this often by commits
# (besides every registry put): after a kill -9 "last seen" is at most this early.
PROGRESS_EVERY_S = 10.0
Sync = Literal["NORMAL", "FULL"]


def _connect(path: Path, sync: Sync) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


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
    ) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DB_NAME
        self.policy = policy or RetentionPolicy()
        self.wall_clock = wall_clock
        self.head_window_s = head_window_s
        self._lock_fd = take_lock(data_dir)
        try:
            self._conn = self._open(sync)
            self.reader = SqliteReader(self.path, self.policy)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._idx: dict[str, int] = {}
        self._inst: dict[tuple[int, str], int] = {}
        self._head = 0
        self._head_opened_at = wall_clock()
        self._reload()
        self._progress_at: dict[int, float] = {}
        self._max_bytes: int | None = None
        self.max_bytes = max_bytes
        self._apply_max_bytes()

    def _reload(self) -> None:
        """Read the ids and head state the engine caches; after a failed transaction, to forget its effects."""
        self._idx = dict(self._conn.execute("SELECT node_id, node_idx FROM nodes").fetchall())
        self._inst = {
            (n, i): k for k, n, i in self._conn.execute("SELECT inst_idx, node_idx, instance_id FROM instances")
        }
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        self._head = int(meta.get("head_current", "0"))
        self._head_opened_at = float(meta.get("head_opened_at", self._head_opened_at))

    # ---- open ------------------------------------------------------------------------------

    def _open(self, sync: Sync) -> sqlite3.Connection:
        if self.path.exists():
            with self.path.open("rb") as f:
                header = f.read(len(SQLITE_HEADER))
            if header and header != SQLITE_HEADER:
                raise model.StoreCorruptError(self.path, "not an SQLite database", REMEDY_CORRUPT)
        try:
            conn = _connect(self.path, sync)
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id != APPLICATION_ID and tables:
                conn.close()
                raise model.StoreForeignError(self.path, "a SQLite database of another application", REMEDY_FOREIGN)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise model.StoreUnwritableError(self.path, f"expected WAL journal mode, got {mode!r}", REMEDY_DIR)
            conn.execute(f"PRAGMA synchronous = {sync}")
            migrate(conn, SCHEMA_VERSION, self.wall_clock())
            check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and ("readonly" in str(exc) or "unable to open" in str(exc)):
                raise model.StoreUnwritableError(self.path, f"cannot write the database ({exc})", REMEDY_DIR) from exc
            raise model.StoreCorruptError(self.path, f"damaged database ({exc})", REMEDY_CORRUPT) from exc
        if check != "ok":
            conn.close()
            raise model.StoreCorruptError(self.path, f"damaged database (quick_check: {check[:200]!r})", REMEDY_CORRUPT)
        return conn

    # ---- write -----------------------------------------------------------------------------

    def write(self, samples: Sequence[model.Sample], nodes: Sequence[model.NodeRow]) -> None:
        """Append ``samples`` and upsert ``nodes`` in one transaction (durable as ``synchronous`` says)."""
        try:
            self._write(samples, nodes)
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: sqlite3.Error) -> model.StoreWriteError:
        with contextlib.suppress(sqlite3.Error):  # a dead disk may fail this too; the next write retries it
            self._reload()
        full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        what = "disk full" if full else "write failed"
        return model.StoreWriteError(f"{what}: {exc} ({self.path})", disk_full=full)

    def _apply_max_bytes(self) -> None:
        """Cap the database file at ``max_bytes`` (a disk quota; past it commits fail with SQLITE_FULL).

        Set ``max_bytes`` from any thread; it takes effect at the next write, on the writer's thread.
        """
        if self.max_bytes == self._max_bytes:
            return
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        # 2**31 - 2 pages is SQLite's own ceiling: the pragma's way of saying "no cap".
        pages = 2**31 - 2 if self.max_bytes is None else max(1, self.max_bytes // page_size)
        self._conn.execute(f"PRAGMA max_page_count = {pages}")
        self._max_bytes = self.max_bytes

    def _write(self, samples: Sequence[model.Sample], nodes: Sequence[model.NodeRow]) -> None:
        self._apply_max_bytes()
        now = self.wall_clock()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in nodes:
                self._put(row)
            self._rotate_if_due(now)
            rows = []
            newest: dict[int, int] = {}
            for s in samples:
                node_idx = self._node_idx(s.node_id, s.instance_id)
                rows.append((node_idx, self._inst_idx(node_idx, s.instance_id), s.seq, s.sampled_at,
                             *codec.to_stored(s.values)))  # fmt: skip
                newest[node_idx] = max(newest.get(node_idx, 0), s.seq)
            conn.executemany(f"INSERT OR IGNORE INTO head_{self._head} VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            due = [
                (seq, now, n)
                for n, seq in newest.items()
                if now - self._progress_at.get(n, -math.inf) >= PROGRESS_EVERY_S
            ]
            conn.executemany("UPDATE nodes SET last_seq = max(last_seq, ?), last_seen_at = ? WHERE node_idx = ?", due)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLITE_FULL has already rolled it back (https://sqlite.org/lang_transaction.html)
                conn.execute("ROLLBACK")
            raise
        for _, _, n in due:
            self._progress_at[n] = now

    def _put(self, row: model.NodeRow) -> None:
        values = (row.instance_id, row.facts, row.interval_s, row.state, row.state_since_at, row.reason,
                  row.last_seen_at, row.last_seq, row.missing_samples, row.dropped_samples, row.last_sample,
                  row.key_fingerprint, row.labels)  # fmt: skip
        sets = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in ROW_COLUMNS.split(","))
        cur = self._conn.execute(
            f"INSERT INTO nodes (node_id, {ROW_COLUMNS}) VALUES (?, {', '.join('?' * 13)}) "
            f"ON CONFLICT (node_id) DO UPDATE SET {sets} RETURNING node_idx",
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
        """Inside a transaction: write the other head table from now on, if this one's window is over."""
        if now - self._head_opened_at < self.head_window_s or not self._empty(1 - self._head):
            return False
        self._head, self._head_opened_at = 1 - self._head, now
        self._conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("head_current", str(self._head)), ("head_opened_at", repr(now))],
        )
        return True

    def _empty(self, head: int) -> bool:
        return self._conn.execute(f"SELECT 1 FROM head_{head} LIMIT 1").fetchone() is None

    # ---- maintenance -----------------------------------------------------------------------

    def maintain(self, now_at: float) -> model.MaintenanceReport:
        """Compact the idle head, build rollups of closed chunks, drop expired chunks: one transaction each."""
        try:
            return self._maintain(now_at)
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    def _maintain(self, now_at: float) -> model.MaintenanceReport:
        compacted, written, late = self._compact(1 - self._head, now_at)
        with self._txn():
            # No writes for a whole window (a quiet fleet) must not leave samples in the head forever.
            rotated = self._rotate_if_due(self.wall_clock())
        if rotated:
            more = self._compact(1 - self._head, now_at)
            compacted, written, late = compacted + more[0], written + more[1], late + more[2]
        built = 0
        for level in range(1, len(self.policy.tiers)):
            built += self._rollup(level, now_at)
        dropped = {}
        with self._txn():
            for level, tier in enumerate(self.policy.tiers):
                cutoff = tier.drop_before(now_at)
                cur = self._conn.execute("DELETE FROM chunks WHERE tier = ? AND chunk_start < ?", (level, cutoff))
                dropped[tier.name] = cur.rowcount
                self._conn.execute("DELETE FROM dirty WHERE tier = ? AND span_start < ?", (level, cutoff))
        return model.MaintenanceReport(compacted, written, built, dropped, late)

    def _txn(self) -> Txn:
        return Txn(self._conn)

    def _compact(self, head: int, now_at: float) -> tuple[int, int, int]:
        rows = self._conn.execute(
            f"SELECT node_idx, inst_idx, seq, sampled_at, {VALUE_COLUMNS} FROM head_{head} "
            "ORDER BY node_idx, inst_idx, sampled_at"
        ).fetchall()
        if not rows:
            return 0, 0, 0
        raw = self.policy.tiers[0]
        groups: dict[tuple[int, int, float], list[Any]] = {}
        late = 0
        for row in rows:
            if not self.policy.accepts(row[3], now_at):
                late += 1
                continue
            groups.setdefault((row[0], row[1], raw.chunk_start(row[3])), []).append(row)
        with self._txn():
            for (node_idx, inst_idx, start), points in groups.items():
                self._insert_raw(node_idx, inst_idx, start, points)
                self._conn.execute("INSERT OR IGNORE INTO dirty VALUES (1, ?, ?)", (node_idx, start))
            self._conn.execute(f"DELETE FROM head_{head}")
        return len(rows), len(groups), late

    def _insert_raw(self, node_idx: int, inst_idx: int, start: float, points: Sequence[Any]) -> None:
        series = [[p[4 + s] for p in points] for s in range(len(codec.TYPECODES))]
        blob = codec.encode_raw([p[2] for p in points], [p[3] for p in points], series)
        self._conn.execute(
            "INSERT INTO chunks (tier, node_idx, inst_idx, chunk_start, span_start, first_at, last_at, n, "
            "last_seq, data) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_idx, inst_idx, start, start, points[0][3], points[-1][3], len(points),
             max(p[2] for p in points), blob),
        )  # fmt: skip

    def _rollup(self, level: int, now_at: float) -> int:
        source, tier = self.policy.tiers[level - 1], self.policy.tiers[level]
        spans = self._conn.execute("SELECT node_idx, span_start FROM dirty WHERE tier = ?", (level,)).fetchall()
        built = 0
        for node_idx, span in spans:
            if not self.policy.closed(source, span, now_at):
                continue
            with self._txn():
                if level == 1:
                    buckets = self._merge_raw_span(node_idx, span)
                else:
                    finer = self.reader.stored_buckets(node_idx, level - 1, span, span + source.chunk_s)
                    buckets = merge_buckets(finer, tier.step_s)
                self._conn.execute("DELETE FROM chunks WHERE tier = ? AND node_idx = ? AND span_start = ?",
                                   (level, node_idx, span))  # fmt: skip
                if len(buckets):
                    self._conn.execute(
                        "INSERT INTO chunks (tier, node_idx, inst_idx, chunk_start, span_start, first_at, last_at, "
                        "n, last_seq, data) VALUES (?, ?, 0, ?, ?, ?, ?, ?, 0, ?)",
                        (level, node_idx, tier.chunk_start(span), span, buckets.start[0], buckets.start[-1],
                         len(buckets), codec.encode_buckets(buckets)),
                    )  # fmt: skip
                    if level + 1 < len(self.policy.tiers):
                        self._conn.execute("INSERT OR IGNORE INTO dirty VALUES (?, ?, ?)",
                                           (level + 1, node_idx, tier.chunk_start(span)))  # fmt: skip
                self._conn.execute("DELETE FROM dirty WHERE tier = ? AND node_idx = ? AND span_start = ?",
                                   (level, node_idx, span))  # fmt: skip
            built += 1
        return built

    def _merge_raw_span(self, node_idx: int, span: float) -> Buckets:
        """Rewrite one node-hour's raw segments as one chunk per instance; return its 1-min buckets."""
        chunks = self._conn.execute(
            "SELECT inst_idx, data FROM chunks WHERE tier = 0 AND node_idx = ? AND span_start = ?", (node_idx, span)
        ).fetchall()
        per_inst: dict[int, list[Any]] = {}
        for inst_idx, blob in chunks:
            seq, at, series = codec.decode_raw(blob)
            per_inst.setdefault(inst_idx, []).extend(
                (q, t, *vals) for q, t, *vals in zip(seq, at, *series, strict=True)
            )
        all_points = []
        if len(chunks) > len(per_inst):
            self._conn.execute(
                "DELETE FROM chunks WHERE tier = 0 AND node_idx = ? AND span_start = ?", (node_idx, span)
            )
        for inst_idx, merged in per_inst.items():
            points = sorted({p[0]: p for p in merged}.values(), key=lambda p: p[1])
            if len(chunks) > len(per_inst):
                self._insert_raw(node_idx, inst_idx, span, [(0, 0, *p) for p in points])
            all_points.extend(points)
        return rollup_points([p[1] for p in all_points], [[p[2 + s] for p in all_points] for s in range(7)],
                             self.policy.tiers[1].step_s)  # fmt: skip

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
        """Checkpoint, close both connections, release the lock."""
        try:
            self.reader.close()
            self._conn.close()
        finally:
            os.close(self._lock_fd)
