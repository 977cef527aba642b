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
from collector.store.datadir import REMEDY_CORRUPT, REMEDY_DIR, REMEDY_FOREIGN, SQLITE_HEADER


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
# One row per commit: that commit's samples of every node as one columnar blob (codec.Batch).
# A row per sample, keyed by node, made each 1-s commit touch one B-tree page per node: 112x
# write amplification and 11 us per sample (bench/store_size.py, first run).
_HEAD = (
    "(id INTEGER PRIMARY KEY, first_at REAL NOT NULL, last_at REAL NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL)"
)
# Version -> (what it does, its statements). Never edit a released entry: add the next one.
MIGRATIONS: dict[int, tuple[str, tuple[str, ...]]] = {
    1: ("registry, head tables, chunks", (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE nodes (node_idx INTEGER PRIMARY KEY, node_id TEXT NOT NULL UNIQUE, instance_id TEXT NOT NULL, "
        "facts BLOB NOT NULL, interval_s REAL NOT NULL, state TEXT NOT NULL, state_since_at REAL NOT NULL, "
        "reason TEXT, last_seen_at REAL, last_seq INTEGER NOT NULL DEFAULT 0, "
        "missing_samples INTEGER NOT NULL DEFAULT 0, dropped_samples INTEGER NOT NULL DEFAULT 0, "
        "last_sample BLOB, key_fingerprint TEXT, labels BLOB, forgotten_at REAL)",
        "CREATE TABLE instances (inst_idx INTEGER PRIMARY KEY, node_idx INTEGER NOT NULL, instance_id TEXT NOT NULL, "
        "UNIQUE (node_idx, instance_id))",
        f"CREATE TABLE head_0 {_HEAD}",
        f"CREATE TABLE head_1 {_HEAD}",
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY, tier INTEGER NOT NULL, node_idx INTEGER NOT NULL, "
        "inst_idx INTEGER NOT NULL, chunk_start REAL NOT NULL, span_start REAL NOT NULL, first_at REAL NOT NULL, "
        "last_at REAL NOT NULL, n INTEGER NOT NULL, last_seq INTEGER NOT NULL, data BLOB NOT NULL)",
        # One node-major index only: each compaction inserts a row per node, touching one leaf per
        # node in every node-major index, so each extra one costs a page write per node.
        "CREATE INDEX chunks_by_node ON chunks (node_idx, tier, last_at)",
        "CREATE INDEX chunks_by_age ON chunks (tier, chunk_start)",
        # Segments holding more than one partial row, to consolidate once closed.
        "CREATE TABLE pending (tier INTEGER NOT NULL, node_idx INTEGER NOT NULL, span_start REAL NOT NULL, "
        "PRIMARY KEY (tier, node_idx, span_start)) WITHOUT ROWID",
    )),
    # Commits refresh last_seen_at every few seconds per node: in nodes' wide rows (facts, last sample)
    # a refresh of every node rewrote most of that table's pages; narrow rows touch a few.
    2: ("progress: last seen per node, refreshed by commits", (
        "CREATE TABLE progress (node_idx INTEGER PRIMARY KEY, last_seen_at REAL NOT NULL)",
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


def open_database(path: Path, sync: str, now_at: float, *, check: bool = True) -> sqlite3.Connection:
    """Open (or create) the store at ``path`` in WAL mode, migrated; refuse a corrupt, foreign or newer file.

    ``check=False`` skips ``quick_check``: for the writer process, whose parent checked the file a moment ago.
    """
    if path.exists():
        with path.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise model.StoreCorruptError(path, "not an SQLite database", REMEDY_CORRUPT)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise model.StoreForeignError(path, "a SQLite database of another application", REMEDY_FOREIGN)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise model.StoreUnwritableError(path, f"expected WAL journal mode, got {mode!r}", REMEDY_DIR)
        conn.execute(f"PRAGMA synchronous = {sync}")
        migrate(conn, SCHEMA_VERSION, now_at)
        # quick_check reads every page once (O(file size)) but skips the index cross-checks of
        # integrity_check: it finds a damaged page before a query trips on it at 3 a.m.
        found = conn.execute("PRAGMA quick_check(1)").fetchone()[0] if check else "ok"
        if found != "ok":
            raise model.StoreCorruptError(path, f"damaged database (quick_check: {found[:200]!r})", REMEDY_CORRUPT)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and ("readonly" in str(exc) or "unable to open" in str(exc)):
            raise model.StoreUnwritableError(path, f"cannot write the database ({exc})", REMEDY_DIR) from exc
        raise model.StoreCorruptError(path, f"damaged database ({exc})", REMEDY_CORRUPT) from exc
    except model.StoreOpenError:
        conn.close()
        raise
    return conn
