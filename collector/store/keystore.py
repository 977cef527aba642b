"""The node key records on disk: ``node_keys.json`` in the data dir, read at start and saved when they change.

Without it a restarted collector has an empty key table and trusts every node id
on first use again, which is the squatting this table exists to stop (issue 13,
finding 2). ``read`` runs once at open; a damaged file refuses to start with a
``StoreOpenError`` naming it, never half-read (``collector.trust.keyfile``).
``track(table)`` loads what was read into the ``IdentityTable``; ``save()`` writes
the table in a worker thread when its ``revision`` moved: the runtime's store loop
calls it once a second (so a burst of first uses is one write) and the store once
more at close. A write is atomic (tmp file, fsync, rename, fsync of the directory).

It lives with the store, not in the pure ``collector.trust``: it does file I/O. Not here: the
JSON format (``keyfile``), the TOFU rules (``identity``), --ephemeral (no store,
so no file: the keys live and die in memory).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from collector.store.datadir import REMEDY_DIR
from collector.store.model import StoreCorruptError, StoreUnwritableError
from collector.trust.identity import IdentityTable, KeyRecord
from collector.trust.keyfile import KeyFileError, dump_records, load_records

log = logging.getLogger("nodewatch.collector.store")

KEYS_NAME = "node_keys.json"
REMEDY_KEYS = (
    "restore it from a backup, or move it aside to start with no node keys "
    "(every node id is then trusted on first use again)"
)


def write_keys(path: Path, records: list[KeyRecord]) -> None:
    """Replace ``path`` atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, dump_records(records))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)  # the rename survives a power cut only once the directory is synced
    finally:
        os.close(dir_fd)


class KeyStore:
    """``node_keys.json`` in one data dir, and the revision of the key table it holds."""

    __slots__ = ("_saved", "_table", "path", "records")

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / KEYS_NAME
        self.records: list[KeyRecord] = []  # as read at open, until ``track`` loads them
        self._table: IdentityTable | None = None
        self._saved = 0

    def read(self) -> list[KeyRecord]:
        """The saved records (none before the first save); ``StoreOpenError`` naming the file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return self.records
        except OSError as exc:
            raise StoreUnwritableError(self.path, f"cannot read the node keys ({exc.strerror})", REMEDY_DIR) from exc
        try:
            self.records = load_records(data)
        except KeyFileError as exc:
            raise StoreCorruptError(self.path, f"the node keys are damaged ({exc})", REMEDY_KEYS) from exc
        return self.records

    def track(self, table: IdentityTable) -> None:
        """Load the records read at open into ``table``, and save ``table`` from now on."""
        table.load(self.records)
        self._table, self._saved = table, table.revision

    async def save(self) -> None:
        """Write the table in a worker thread if it changed since the last save; a failure is retried next call."""
        table = self._table
        if table is None or table.revision == self._saved:
            return
        revision, records = table.revision, table.records()  # KeyRecords are frozen: safe to hand over
        try:
            await asyncio.to_thread(write_keys, self.path, records)
        except OSError as exc:
            log.warning("store: cannot save the node keys to %s: %s; retrying", self.path, exc)
            return
        self._saved = revision
