"""The store's value types, its errors, and ``StoreBackend``: the one interface a storage engine implements.

A backend is synchronous and is driven by one writer thread (``collector.store.writer``);
it never sees the event loop. ``SqliteEngine`` is the first backend; a NATS JetStream
one (many collectors sharing state) implements the same five calls.

Not here: policy (``collector.store.policy``), SQL (``collector.store.sqlite_engine``).

Errors raised when a store is opened, all ``StoreOpenError`` (the CLI prints the
message and exits 2)::

    StoreOpenError            (path, what to do)
     +-- StoreUnwritableError      the data dir cannot be created or written
     +-- StoreLockedError          another collector holds the data dir
     +-- StoreCorruptError         the file is not a database, or fails its integrity check
     +-- StoreForeignError         a valid SQLite database, but not a nodewatch store
     +-- StoreTooNewError          written by a newer nodewatch (schema version above ours)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from collector.store.codec import Columns, values_of


class Sample(NamedTuple):
    """One heartbeat as the store keeps it; ``values`` follow ``collector.history.SERIES``."""

    node_id: str
    instance_id: str
    seq: int
    sampled_at: float
    values: tuple[float | None, ...]


class Durable(NamedTuple):
    """Every sample of ``(node_id, instance_id)`` up to ``seq`` has committed (an ack may cover it)."""

    node_id: str
    instance_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node as the registry keeps it across restarts; wall times in epoch seconds."""

    node_id: str
    instance_id: str
    facts: bytes  # NodeFacts packed as msgpack (the store never decodes it)
    interval_s: float
    state: str
    state_since_at: float
    reason: str | None = None
    last_seen_at: float | None = None
    last_seq: int = 0
    missing_samples: int = 0
    dropped_samples: int = 0
    last_sample: bytes | None = None  # the newest heartbeat frame, msgpack, as the cache keeps it
    key_fingerprint: str | None = None  # issue 13 (agent keys): room kept from schema v1 on
    labels: bytes | None = None  # issue 14 (labels): a msgpack map, room kept from schema v1 on


@dataclass(frozen=True, slots=True)
class RawPoints:
    """One node's raw points of one instance, oldest first.

    ``columns`` holds them in the history ring's own widths and sentinels (``collector.history``):
    a ring can take them by slice assignment, with no per-point work. ``seq``, ``sampled_at`` and
    ``series`` are the same points as plain values (None: not measured), built on each access.
    """

    instance_id: str
    columns: Columns

    @property
    def seq(self) -> list[int]:
        """Sequence numbers."""
        return list(self.columns.seq)

    @property
    def sampled_at(self) -> list[float]:
        """Sample times, epoch seconds (kept to the microsecond)."""
        return [us / 1e6 for us in self.columns.at_us]

    @property
    def series(self) -> tuple[list[float | None], ...]:
        """Each of ``collector.history.SERIES``, in its unit."""
        return tuple(values_of(column, s) for s, column in enumerate(self.columns.series))


@dataclass(frozen=True, slots=True)
class RangeResult:
    """A range query's answer. Raw tier: ``avg`` holds the values and ``min``/``max`` are None.

    ``at`` is the sample time (raw) or the bucket start (rollups). Periods without a
    sample have no entry and are listed in ``gaps`` as (from_at, to_at): never interpolated.
    """

    node_id: str
    tier: str
    step_s: float
    at: list[float]
    avg: dict[str, list[float | None]]
    min: dict[str, list[float | None]] | None
    max: dict[str, list[float | None]] | None
    count: list[int]
    gaps: list[tuple[float, float]]
    seq: list[int] | None = None

    def to_map(self) -> dict[str, Any]:
        """The answer as the one map JSON and msgpack both carry (a raw answer has no min/max, a rollup no seq)."""
        out: dict[str, Any] = {
            "node_id": self.node_id,
            "tier": self.tier,
            "step_s": self.step_s,
            "at": self.at,
            "count": self.count,
            "avg": self.avg,
            "gaps": [list(gap) for gap in self.gaps],
        }
        if self.min is not None and self.max is not None:
            out["min"], out["max"] = self.min, self.max
        if self.seq is not None:
            out["seq"] = self.seq
        return out


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one ``maintain`` pass did, for logs and the bench."""

    compacted_samples: int = 0
    chunks_written: int = 0  # raw chunks; each also adds partial buckets to every rollup tier
    segments_consolidated: int = 0
    chunks_dropped: dict[str, int] = field(default_factory=dict)
    late_dropped: int = 0  # samples older than raw retention when they were compacted: counted, not kept
    more_work: bool = False  # consolidation stopped at its time budget: call again soon


class StoreBackend(Protocol):
    """Storage engine interface: every call is blocking and made from one writer thread (reads from any)."""

    def write(self, samples: Sequence[Sample], nodes: Sequence[NodeRow], forgotten: Sequence[str] = ()) -> None:
        """Append ``samples``, upsert ``nodes``, drop ``forgotten`` from the registry: one transaction, durable
        when it returns. A forgotten node's history stays until retention drops it; a later put revives it."""

    def maintain(self, now_at: float) -> MaintenanceReport:
        """Compact, roll up and drop expired chunks, as of wall time ``now_at``; bounded in time (see ``more_work``)."""

    def load_nodes(self) -> list[NodeRow]:
        """Every node in the registry, sorted by node id (registry get)."""

    def load_recent(self, since_at: float) -> dict[str, RawPoints]:
        """Each node's raw points sampled at or after ``since_at``, of its current instance."""

    def query(self, node_id: str, from_at: float, to_at: float, step_s: float, now_at: float) -> RangeResult:
        """One node's history in [from_at, to_at] at about ``step_s`` resolution."""

    def close(self) -> None:
        """Release the database and the data dir's lock."""


class StoreWriteError(Exception):
    """A commit or maintenance pass failed; nothing of it was written. ``disk_full``: SQLITE_FULL or ENOSPC."""

    def __init__(self, message: str, *, disk_full: bool) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class StoreOpenError(Exception):
    """The store cannot be opened; ``str()`` names the file and what to do."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        super().__init__(f"{path}: {problem}; {remedy}")
        self.path = path
        self.problem = problem
        self.remedy = remedy


class StoreUnwritableError(StoreOpenError):
    """The data dir cannot be created, locked or written."""


class StoreLockedError(StoreOpenError):
    """Another process holds the data dir's lock."""


class StoreCorruptError(StoreOpenError):
    """The database file is damaged or not SQLite at all."""


class StoreForeignError(StoreOpenError):
    """The file is a SQLite database of some other application."""


class StoreTooNewError(StoreOpenError):
    """The schema version is newer than this nodewatch knows."""
