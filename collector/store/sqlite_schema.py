"""The store's schema and its migrations: SQL DDL, kept next to the engine (the only other module with SQL).

The file's version is ``PRAGMA user_version``; every applied migration is also a row
in ``migrations`` (version, applied_at, description), from version 1 on. A file whose
version is newer than ``SCHEMA_VERSION`` is refused, never downgraded.
``PRAGMA application_id`` marks the file as ours, so a foreign SQLite file is told apart.

Not here: reads and writes of data (``collector.store.sqlite_engine``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from collector.store import model


class Txn:
    """``with`` block = one IMMEDIATE transaction on ``conn``, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:  # some errors (SQLITE_FULL) have already rolled it back
            self._conn.execute("ROLLBACK")


# "nodw" as a big-endian int: PRAGMA application_id tells our files from any other SQLite file.
APPLICATION_ID = 0x6E6F6477
_HEAD = (
    "(node_idx INTEGER NOT NULL, inst_idx INTEGER NOT NULL, seq INTEGER NOT NULL, sampled_at REAL NOT NULL, "
    "cpu INTEGER, mem INTEGER, load1 INTEGER, rx REAL, tx REAL, rd REAL, wr REAL, "
    "PRIMARY KEY (node_idx, inst_idx, seq)) WITHOUT ROWID"
)
# Version -> (what it does, its statements). Never edit a released entry: add the next one.
MIGRATIONS: dict[int, tuple[str, tuple[str, ...]]] = {
    1: ("registry, head tables, chunks", (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE nodes (node_idx INTEGER PRIMARY KEY, node_id TEXT NOT NULL UNIQUE, instance_id TEXT NOT NULL, "
        "facts BLOB NOT NULL, interval_s REAL NOT NULL, state TEXT NOT NULL, state_since_at REAL NOT NULL, "
        "reason TEXT, last_seen_at REAL, last_seq INTEGER NOT NULL DEFAULT 0, "
        "missing_samples INTEGER NOT NULL DEFAULT 0, dropped_samples INTEGER NOT NULL DEFAULT 0, "
        "last_sample BLOB, key_fingerprint TEXT, labels BLOB)",
        "CREATE TABLE instances (inst_idx INTEGER PRIMARY KEY, node_idx INTEGER NOT NULL, instance_id TEXT NOT NULL, "
        "UNIQUE (node_idx, instance_id))",
        f"CREATE TABLE head_0 {_HEAD}",
        f"CREATE TABLE head_1 {_HEAD}",
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY, tier INTEGER NOT NULL, node_idx INTEGER NOT NULL, "
        "inst_idx INTEGER NOT NULL, chunk_start REAL NOT NULL, span_start REAL NOT NULL, first_at REAL NOT NULL, "
        "last_at REAL NOT NULL, n INTEGER NOT NULL, last_seq INTEGER NOT NULL, data BLOB NOT NULL)",
        "CREATE INDEX chunks_by_node ON chunks (node_idx, tier, first_at)",
        "CREATE INDEX chunks_by_age ON chunks (tier, chunk_start)",
        "CREATE TABLE dirty (tier INTEGER NOT NULL, node_idx INTEGER NOT NULL, span_start REAL NOT NULL, "
        "PRIMARY KEY (tier, node_idx, span_start)) WITHOUT ROWID",
    )),
    2: ("chunks by node and span, for rebuilding one rollup chunk", (
        "CREATE INDEX chunks_by_span ON chunks (node_idx, tier, span_start)",
    )),
}  # fmt: skip
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(conn: sqlite3.Connection, target: int, now_at: float) -> list[int]:
    """Apply every migration above the file's version up to ``target``, each in its own transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise model.StoreTooNewError(
            Path(conn.execute("PRAGMA database_list").fetchone()[2]),
            f"schema version {current}, this nodewatch knows up to {SCHEMA_VERSION}",
            "upgrade nodewatch, or pass another --data-dir",
        )
    applied = []
    for version in range(current + 1, target + 1):
        description, statements = MIGRATIONS[version]
        with Txn(conn):
            if version == 1:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL, "
                             "description TEXT NOT NULL)")  # fmt: skip
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (?, ?, ?)", (version, now_at, description))
            conn.execute(f"PRAGMA user_version = {version}")
        applied.append(version)
    return applied
