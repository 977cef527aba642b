"""``EngineView``: the collector's side of the engine while the writes run in the writer process.

Reads, the data dir's lock and the file checks stay here; the quota is forwarded to the child.
Not here: writes (``collector.store.proc``, ``collector.store.child``).
"""

from __future__ import annotations

from pathlib import Path

from collector.store.proc import ProcessWriter
from collector.store.sqlite_engine import SqliteEngine
from collector.store.sqlite_reader import SqliteReader


class EngineView:
    """The parent's side of the engine: reads, the lock and the file checks here; writes in the child.

    ``max_bytes`` (the quota, ``SqliteEngine.max_bytes``) is forwarded to the child's engine.
    """

    def __init__(self, engine: SqliteEngine, writer: ProcessWriter) -> None:
        self._engine, self._writer, self._max_bytes = engine, writer, engine.max_bytes

    @property
    def path(self) -> Path:
        """The database file."""
        return self._engine.path

    @property
    def reader(self) -> SqliteReader:
        """The read connection (``SqliteReader``)."""
        return self._engine.reader

    @property
    def max_bytes(self) -> int | None:
        """The quota the writer process applies."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int | None) -> None:
        self._max_bytes = value
        self._writer.set_max_bytes(value)

    def close(self) -> None:
        """Close the read connection and release the lock (after the child is done)."""
        self._engine.close()
