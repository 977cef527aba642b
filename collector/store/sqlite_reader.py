"""Reads of the SQLite store: range queries, the registry and the recent window. SQL, read-only.

It has its own connection, so queries from the event loop's worker threads run
beside the writer: in WAL mode a reader sees the last committed state and never
blocks the writer (https://sqlite.org/wal.html, "Concurrency"). One lock
serializes this connection's users.

Recent data is in the head batches (not compacted yet); every read merges them
with the chunks, so nothing is missing between a commit and its compaction.

Not here: writes (``collector.store.sqlite_engine``), point maths (``collector.store.assemble``).
"""

# ruff: noqa: S608 - f-strings here insert only our own table and column names; every value is bound.
from __future__ import annotations

import bisect
import dataclasses
import math
import operator
import sqlite3
import threading
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from collector.store import assemble, codec, model
from collector.store.codec import Columns
from collector.store.policy import Buckets, RetentionPolicy, merge_buckets

ROW_COLUMNS = (
    "instance_id, facts, interval_s, state, state_since_at, reason, last_seen_at, last_seq, "
    "missing_samples, dropped_samples, last_sample, key_fingerprint, labels"
)
# Nodes per step of ``recent_slices`` when ``load_recent`` reads them all: one step's chunks are ~0.5 s of decoding.
RECENT_SLICE_NODES = 1000
_HEADS = "SELECT data FROM head_0 WHERE {w} UNION ALL SELECT data FROM head_1 WHERE {w}"


def decode_heads(blobs: Iterable[bytes], node_idx: int | None = None) -> dict[tuple[int, int], Columns]:
    """Head batches -> each (node_idx, inst_idx)'s points, sorted by time; only ``node_idx``'s if given.

    Batches are concatenated column by column, then each (node, instance)'s rows are gathered
    in arrival order and taken out one run at a time. No step is one C call over every point:
    at restart this runs in a worker thread beside the event loop, and a sort or take over the
    2.4 million points of two heads at 10,000 nodes held the GIL for about half a second each
    (nine columns), which froze the loop. Many short calls let it switch every 5 ms.
    """
    node, inst, cols = array("I"), array("I"), Columns.empty()
    for blob in blobs:
        batch = codec.decode_batch(blob) if node_idx is None else codec.decode_batch_node(blob, node_idx)
        node.extend(batch.node)
        inst.extend(batch.inst)
        cols.extend(batch.cols)
    rows: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(node, inst, strict=True)):
        found = rows.get(key)
        if found is None:
            rows[key] = [i]
        else:
            found.append(i)
    runs: dict[tuple[int, int], Columns] = {}
    for key in sorted(rows):
        run = cols.take(rows[key])  # arrival order within a key: commits in order, then rows in order
        if not all(map(operator.le, run.at_us[:-1], run.at_us[1:])):  # a replay out of time order
            run = run.take(sorted(range(len(run)), key=run.at_us.__getitem__))
        runs[key] = run
    return runs


class SqliteReader:
    """Read-only queries on ``path``; safe to call from any thread."""

    def __init__(self, path: Path, policy: RetentionPolicy) -> None:
        self.path = path
        self.policy = policy
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        self._conn.execute("PRAGMA query_only = 1")
        self._lock = threading.Lock()

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _heads(self, node_idx: int | None, from_at: float, to_at: float) -> dict[tuple[int, int], Columns]:
        blobs = self._rows(_HEADS.format(w="last_at >= ? AND first_at <= ?"), (from_at, to_at, from_at, to_at))
        return decode_heads((b for (b,) in blobs), node_idx)

    def raw(self, node_idx: int, from_at: float, to_at: float, inst_idx: int | None = None) -> Columns:
        """One node's raw points in [from_at, to_at] (of one instance if given), sorted by time."""
        blobs = self._rows(
            "SELECT inst_idx, data FROM chunks WHERE node_idx = ? AND tier = 0 AND last_at >= ? AND first_at <= ?",
            (node_idx, from_at, to_at),
        )
        parts = [codec.decode_raw(b) for i, b in blobs if inst_idx is None or i == inst_idx]
        parts += [c for (_, i), c in self._heads(node_idx, from_at, to_at).items() if inst_idx is None or i == inst_idx]
        return assemble.merged(parts, from_at, to_at)

    def buckets(self, node_idx: int, level: int, from_at: float, to_at: float) -> Buckets:
        """Tier ``level``'s buckets of one node starting in the range: stored partials plus the head's, merged."""
        tier = self.policy.tiers[level]
        first = math.floor(from_at / tier.step_s) * tier.step_s
        blobs = self._rows(
            "SELECT data FROM chunks WHERE node_idx = ? AND tier = ? AND last_at >= ? AND first_at <= ?",
            (node_idx, level, first, to_at),
        )
        parts = Buckets.empty(len(codec.TYPECODES))
        for (blob,) in blobs:
            parts.extend(codec.decode_buckets(blob))
        head = assemble.merged(self._heads(node_idx, first, to_at).values(), first, to_at)
        parts.extend(assemble.rollup_columns(head, tier.step_s))
        out = merge_buckets(parts, tier.step_s)
        lo, hi = bisect.bisect_left(out.start, first), bisect.bisect_right(out.start, to_at)
        return Buckets(
            out.start[lo:hi], [c[lo:hi] for c in out.count], [c[lo:hi] for c in out.min],
            [c[lo:hi] for c in out.sum], [c[lo:hi] for c in out.max],
        )  # fmt: skip

    def query(self, node_id: str, from_at: float, to_at: float, step_s: float, now_at: float) -> model.RangeResult:
        """One node's history: the tier by ``RetentionPolicy.choose``, gaps listed, nothing interpolated."""
        tier = self.policy.choose(from_at, to_at, step_s, now_at)
        step_s = self.policy.effective_step(from_at, to_at, step_s)
        found = self._rows("SELECT node_idx, interval_s FROM nodes WHERE node_id = ?", (node_id,))
        if not found:
            return assemble.empty_result(node_id, tier.name, from_at, to_at, max(step_s, tier.step_s))
        node_idx, interval_s = found[0]
        if tier.step_s == 0:
            cols = self.raw(node_idx, from_at, to_at)
            return assemble.raw_result(node_id, cols, from_at, to_at, step_s=step_s, interval_s=interval_s)
        step = max(step_s, tier.step_s)
        buckets = merge_buckets(self.buckets(node_idx, self.policy.tiers.index(tier), from_at, to_at), step)
        return assemble.bucket_result(node_id, tier.name, buckets, from_at, to_at, step_s=step)

    def load_nodes(self) -> list[model.NodeRow]:
        """The registry. ``last_seq`` is the highest stored seq of the node's current instance when any is stored:
        only committed samples count, so a hello acked with it never covers a sample the store lacks."""
        stored: dict[int, int] = dict(
            self._rows("SELECT inst_idx, max(last_seq) FROM chunks WHERE tier = 0 GROUP BY inst_idx")
        )
        for (blob,) in self._rows(_HEADS.format(w="1")):
            insts, seqs = codec.decode_batch_seqs(blob)
            for inst_idx, seq in zip(insts, seqs, strict=True):
                if seq > stored.get(inst_idx, 0):
                    stored[inst_idx] = seq
        seen = dict(self._rows("SELECT node_idx, last_seen_at FROM progress"))
        inst = {(n, i): k for k, n, i in self._rows("SELECT inst_idx, node_idx, instance_id FROM instances")}
        out = []
        for node_idx, node_id, *values in self._rows(
            f"SELECT node_idx, node_id, {ROW_COLUMNS} FROM nodes WHERE forgotten_at IS NULL ORDER BY node_id"
        ):
            row = model.NodeRow(node_id, *values)
            top = stored.get(inst.get((node_idx, row.instance_id), -1), 0)
            last_seen = max((t for t in (row.last_seen_at, seen.get(node_idx)) if t is not None), default=None)
            out.append(dataclasses.replace(row, last_seq=top or row.last_seq, last_seen_at=last_seen))
        return out

    def load_recent(self, since_at: float) -> dict[str, model.RawPoints]:
        """Each node's raw points sampled at or after ``since_at``, of its current instance: one pass for all."""
        out: dict[str, model.RawPoints] = {}
        for part in self.recent_slices(since_at, RECENT_SLICE_NODES):
            out.update(part)
        return out

    def recent_slices(self, since_at: float, nodes_per_slice: int) -> Iterator[dict[str, model.RawPoints]]:
        """``load_recent`` by slices of ``nodes_per_slice`` nodes (by storage index), for a restart that interleaves.

        The first step reads the registry and decodes every head batch (each holds all nodes);
        each later step reads and decodes one slice's chunks. So a caller can run each step in a
        worker thread (``next`` is safe across threads, one at a time) and let the event loop
        have the GIL in between: the refill of 10,000 nodes x 15 min never holds it for long.
        """
        current = self._rows(
            "SELECT n.node_id, n.instance_id, i.node_idx, i.inst_idx FROM nodes n "
            "JOIN instances i ON i.node_idx = n.node_idx AND i.instance_id = n.instance_id "
            "WHERE n.forgotten_at IS NULL ORDER BY i.node_idx"
        )
        heads = self._heads(None, since_at, math.inf)
        for lo in range(0, len(current), max(1, nodes_per_slice)):
            part = current[lo : lo + max(1, nodes_per_slice)]
            first, last = part[0][2], part[-1][2]
            parts: dict[tuple[int, int], list[Columns]] = {}
            for node_idx, inst_idx, blob in self._rows(
                "SELECT node_idx, inst_idx, data FROM chunks "
                "WHERE node_idx BETWEEN ? AND ? AND tier = 0 AND last_at >= ?",
                (first, last, since_at),
            ):
                parts.setdefault((node_idx, inst_idx), []).append(codec.decode_raw(blob))
            out = {}
            for node_id, instance_id, node_idx, inst_idx in part:
                found = parts.get((node_idx, inst_idx), [])
                head = heads.pop((node_idx, inst_idx), None)
                if head is not None:
                    found.append(head)
                if found:
                    out[node_id] = assemble.to_raw_points(instance_id, assemble.merged(found, since_at, math.inf))
            yield out

    def stats(self) -> dict[str, int]:
        """Bytes on disk (database + WAL) and chunk rows per tier, for the bench and /metrics."""
        sizes = {"db_bytes": _size(self.path), "wal_bytes": _size(self.path.with_name(self.path.name + "-wal"))}
        for level, n, total in self._rows("SELECT tier, count(*), sum(length(data)) FROM chunks GROUP BY tier"):
            name = self.policy.tiers[level].name
            sizes[f"{name}_chunks"] = n
            sizes[f"{name}_chunk_bytes"] = total
        for head in (0, 1):
            for n, total in self._rows(f"SELECT count(*), coalesce(sum(length(data)), 0) FROM head_{head}"):
                sizes[f"head_{head}_rows"], sizes[f"head_{head}_bytes"] = n, total
        return sizes

    def close(self) -> None:
        """Close the read connection."""
        with self._lock:
            self._conn.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
