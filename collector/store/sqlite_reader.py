"""Reads of the SQLite store: range queries, the registry and the recent window. SQL, read-only.

It has its own connection, so queries from the event loop's worker threads run
beside the writer: in WAL mode a reader sees the last committed state and never
blocks the writer (https://sqlite.org/wal.html, "Concurrency"). One lock
serializes this connection's users.

Not here: writes (``collector.store.sqlite_engine``), point maths (``collector.store.assemble``).
"""

# ruff: noqa: S608 - f-strings here insert only our own table and column names; every value is bound.

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path
from typing import Any

from collector.store import assemble, codec, model
from collector.store.policy import Buckets, RetentionPolicy, chunk_spans, merge_buckets

VALUE_COLUMNS = "cpu, mem, load1, rx, tx, rd, wr"
ROW_COLUMNS = (
    "instance_id, facts, interval_s, state, state_since_at, reason, last_seen_at, last_seq, "
    "missing_samples, dropped_samples, last_sample, key_fingerprint, labels"
)
_VALUE_COLUMNS = VALUE_COLUMNS
_ROW = ROW_COLUMNS


class SqliteReader:
    """Read-only queries on ``path``; safe to call from any thread."""

    def __init__(self, path: Path, policy: RetentionPolicy) -> None:
        self.path = path
        self.policy = policy
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        self._conn.execute("PRAGMA query_only = 1")
        self._lock = threading.Lock()

    def stored_buckets(self, node_idx: int, level: int, from_at: float, to_at: float) -> Buckets:
        """Every stored bucket of one node at tier ``level`` with a start in [from_at, to_at)."""
        parts = Buckets.empty(len(codec.TYPECODES))
        with self._lock:
            blobs = self._conn.execute(
                "SELECT data FROM chunks WHERE node_idx = ? AND tier = ? AND last_at >= ? AND first_at < ?",
                (node_idx, level, from_at, to_at),
            ).fetchall()
        for (blob,) in blobs:
            b = codec.decode_buckets(blob)
            keep = [i for i, start in enumerate(b.start) if from_at <= start < to_at]
            parts.start.extend(b.start[i] for i in keep)
            for s in range(len(codec.TYPECODES)):
                parts.count[s].extend(b.count[s][i] for i in keep)
                parts.min[s].extend(b.min[s][i] for i in keep)
                parts.sum[s].extend(b.sum[s][i] for i in keep)
                parts.max[s].extend(b.max[s][i] for i in keep)
        return parts

    def _raw(self, node_idx: int, from_at: float, to_at: float, inst_idx: int | None = None) -> list[Any]:
        inst = "" if inst_idx is None else f" AND inst_idx = {int(inst_idx)}"
        with self._lock:
            blobs = self._conn.execute(
                f"SELECT data FROM chunks WHERE node_idx = ? AND tier = 0 AND last_at >= ? AND first_at <= ?{inst}",
                (node_idx, from_at, to_at),
            ).fetchall()
            head = self._conn.execute(
                f"SELECT seq, sampled_at, {_VALUE_COLUMNS} FROM head_0 WHERE node_idx = ?{inst} UNION ALL "
                f"SELECT seq, sampled_at, {_VALUE_COLUMNS} FROM head_1 WHERE node_idx = ?{inst}",
                (node_idx, node_idx),
            ).fetchall()
        return assemble.raw_points((b for (b,) in blobs), head, from_at, to_at)

    def _buckets(self, node_idx: int, level: int, from_at: float, to_at: float, now_at: float) -> Buckets:
        """Tier ``level``'s buckets in the range: stored ones, and computed from the tier below where a
        chunk is not built yet (still open, or dirty from late samples), so recent data has no hole."""
        source, tier = self.policy.tiers[level - 1], self.policy.tiers[level]
        with self._lock:
            dirty = {s for (s,) in self._conn.execute(
                "SELECT span_start FROM dirty WHERE tier = ? AND node_idx = ?", (level, node_idx))}  # fmt: skip
            built = {s for (s,) in self._conn.execute(
                "SELECT span_start FROM chunks WHERE tier = ? AND node_idx = ? AND span_start >= ? AND span_start <= ?",
                (level, node_idx, source.chunk_start(from_at), to_at))}  # fmt: skip
        parts = Buckets.empty(len(codec.TYPECODES))
        for span in chunk_spans(source, from_at, to_at):
            end = span + source.chunk_s
            if span in built and span not in dirty:
                got = self.stored_buckets(node_idx, level, span, end)
            elif level == 1:
                got = assemble.points_buckets(self._raw(node_idx, span, end - 1e-6), tier.step_s)
            else:
                got = self._buckets(node_idx, level - 1, span, end - 1e-6, now_at)
            _extend(parts, got)
        return merge_buckets(parts, tier.step_s)

    def query(self, node_id: str, from_at: float, to_at: float, step_s: float, now_at: float) -> model.RangeResult:
        """One node's history: the tier by ``RetentionPolicy.choose``, gaps listed, nothing interpolated."""
        tier = self.policy.choose(from_at, to_at, step_s, now_at)
        step_s = self.policy.effective_step(from_at, to_at, step_s)
        with self._lock:
            found = self._conn.execute(
                "SELECT node_idx, interval_s FROM nodes WHERE node_id = ?", (node_id,)
            ).fetchone()
        if found is None:
            return assemble.empty_result(node_id, tier.name, from_at, to_at, max(step_s, tier.step_s))
        node_idx, interval_s = found
        if tier.step_s == 0:
            return assemble.raw_result(
                node_id, self._raw(node_idx, from_at, to_at), from_at, to_at, step_s=step_s, interval_s=interval_s
            )
        level = self.policy.tiers.index(tier)
        step = max(step_s, tier.step_s)
        buckets = merge_buckets(self._buckets(node_idx, level, from_at, to_at, now_at), step)
        return assemble.bucket_result(node_id, tier.name, buckets, from_at, to_at, step_s=step)

    def load_nodes(self) -> list[model.NodeRow]:
        """The registry; ``last_seq`` is at least the highest stored seq of the node's current instance."""
        with self._lock:
            stored = dict(self._conn.execute(
                "SELECT i.inst_idx, max(m) FROM instances i JOIN ("
                "SELECT inst_idx, max(last_seq) AS m FROM chunks WHERE tier = 0 GROUP BY inst_idx UNION ALL "
                "SELECT inst_idx, max(seq) FROM head_0 GROUP BY inst_idx UNION ALL "
                "SELECT inst_idx, max(seq) FROM head_1 GROUP BY inst_idx) USING (inst_idx) GROUP BY i.inst_idx"
            ).fetchall())  # fmt: skip
            rows = self._conn.execute(f"SELECT node_idx, node_id, {_ROW} FROM nodes ORDER BY node_id").fetchall()
            inst = {
                (n, i): k for k, n, i in self._conn.execute("SELECT inst_idx, node_idx, instance_id FROM instances")
            }
        out = []
        for node_idx, node_id, *values in rows:
            row = model.NodeRow(node_id, *values)
            top = stored.get(inst.get((node_idx, row.instance_id), -1), 0)
            out.append(row if top <= row.last_seq else _replace_seq(row, top))
        return out

    def load_recent(self, since_at: float) -> dict[str, model.RawPoints]:
        """Each node's current instance's raw points sampled at or after ``since_at``."""
        with self._lock:
            current = self._conn.execute(
                "SELECT n.node_id, n.node_idx, n.instance_id, i.inst_idx FROM nodes n "
                "JOIN instances i ON i.node_idx = n.node_idx AND i.instance_id = n.instance_id"
            ).fetchall()
        result = {}
        for node_id, node_idx, instance_id, inst_idx in current:
            points = self._raw(node_idx, since_at, float("inf"), inst_idx)
            if points:
                result[node_id] = assemble.to_raw_points(instance_id, points)
        return result

    def stats(self) -> dict[str, int]:
        """Bytes on disk (database + WAL) and chunk rows per tier, for the bench and /metrics."""
        sizes = {"db_bytes": _size(self.path), "wal_bytes": _size(self.path.with_name(self.path.name + "-wal"))}
        with self._lock:
            for level, n, total in self._conn.execute(
                "SELECT tier, count(*), sum(length(data)) FROM chunks GROUP BY tier"
            ):
                name = self.policy.tiers[level].name
                sizes[f"{name}_chunks"] = n
                sizes[f"{name}_chunk_bytes"] = total
        return sizes

    def close(self) -> None:
        """Close the read connection."""
        with self._lock:
            self._conn.close()


def _extend(parts: Buckets, more: Buckets) -> None:
    parts.start.extend(more.start)
    for s in range(len(parts.count)):
        parts.count[s].extend(more.count[s])
        parts.min[s].extend(more.min[s])
        parts.sum[s].extend(more.sum[s])
        parts.max[s].extend(more.max[s])


def _replace_seq(row: model.NodeRow, seq: int) -> model.NodeRow:
    return dataclasses.replace(row, last_seq=seq)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
