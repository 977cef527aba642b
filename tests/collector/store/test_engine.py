"""The SQLite engine on real files: round trip, retention, rollups, and every way opening can fail."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from collector.history import SERIES, HistoryRing
from collector.store.model import (
    NodeRow,
    Sample,
    StoreCorruptError,
    StoreForeignError,
    StoreLockedError,
    StoreTooNewError,
    StoreUnwritableError,
    StoreWriteError,
)
from collector.store.sqlite_engine import DB_NAME, SqliteEngine
from collector.store.sqlite_schema import migrate
from tests.support.clock import FakeClock

DAY = 86400.0
T0 = 1_700_000_000.0 // DAY * DAY


def row(node_id: str = "n1", instance: str = "i1", at: float = T0) -> NodeRow:
    """A registry row as the shell would put it after a hello."""
    return NodeRow(node_id, instance, b"\x81\xa8hostname\xa1a", 1.0, "online", at, reason="hello", last_seen_at=at)


def samples(n: int, start_seq: int = 1, t0: float = T0, node_id: str = "n1", instance: str = "i1") -> list[Sample]:
    """``n`` 1-Hz samples with exactly representable values (cpu = seq % 100, in whole percent)."""
    return [
        Sample(node_id, instance, s, t0 + (s - start_seq), (float(s % 100), 50.5, 0.25, 1000.0, 0.0, None, 8.0))
        for s in range(start_seq, start_seq + n)
    ]


@pytest.fixture
def clock() -> FakeClock:
    """Wall time the engine sees, moved by the test."""
    return FakeClock(T0)


@pytest.fixture
def engine(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteEngine]:
    """An engine on a fresh data dir."""
    e = SqliteEngine(tmp_path / "data", wall_clock=clock)
    yield e
    e.close()


def write_hours(engine: SqliteEngine, clock: FakeClock, hours: int, per_write: int = 60) -> int:
    """Write ``hours`` of 1-Hz samples in commits of ``per_write``, maintaining as the writer would."""
    seq = 1
    for _ in range(hours * 3600 // per_write):
        engine.write(samples(per_write, seq, T0 + seq - 1), [])
        seq += per_write
        clock.advance(per_write)
        if seq % 600 == 1:
            engine.maintain(clock.now)
    return seq - 1


class TestRoundTrip:
    """What is written is what comes back, before and after a reopen."""

    def test_registry_and_recent_window_survive_a_reopen(self, tmp_path: Path, clock: FakeClock) -> None:
        """After a restart every node is back with its last seq, and the last 15 minutes of points are there."""
        e = SqliteEngine(tmp_path, wall_clock=clock)
        e.write(samples(1000), [row()])
        e.close()
        e = SqliteEngine(tmp_path, wall_clock=clock)
        try:
            (node,) = e.load_nodes()
            assert (node.node_id, node.instance_id, node.last_seq, node.facts) == ("n1", "i1", 1000, row().facts)
            recent = e.load_recent(T0 + 1000 - 900)["n1"]
            assert recent.seq == list(range(101, 1001))  # seq s was sampled at T0 + s - 1
            assert recent.series[0][:2] == [1.0, 2.0]
            assert recent.series[5][0] is None
        finally:
            e.close()

    def test_raw_query_returns_points_and_gaps(self, engine: SqliteEngine, clock: FakeClock) -> None:
        """Samples 1-100, then silence, then 201-300: the raw answer has 200 points and one gap."""
        engine.write(samples(100), [row()])
        engine.write(samples(100, 201, T0 + 200), [])
        r = engine.query("n1", T0, T0 + 299, 1.0, T0 + 300)
        assert r.tier == "raw"
        assert r.seq == [*range(1, 101), *range(201, 301)]
        assert r.avg["mem_percent"][0] == 50.5
        assert r.gaps == [(T0 + 99, T0 + 200)]

    def test_the_answer_is_one_plain_map(self, engine: SqliteEngine) -> None:
        """A rollup answer packs to the same map in JSON and msgpack: min/avg/max per series, gaps as pairs."""
        engine.write(samples(120), [row()])
        wire = engine.query("n1", T0, T0 + 119, 60.0, T0 + 120).to_map()
        assert json.loads(json.dumps(wire)) == msgpack.unpackb(msgpack.packb(wire)) == wire
        assert (wire["tier"], wire["at"], wire["count"], wire["gaps"]) == ("1m", [T0, T0 + 60], [60, 60], [])
        assert wire["avg"]["cpu_percent"] == [30.5, 55.5]  # seq 61-120: cpu 61..99 then 0..20
        assert "seq" not in wire

    def test_unknown_node_is_one_gap(self, engine: SqliteEngine) -> None:
        """A node the store never saw: no points, the whole range is a gap."""
        r = engine.query("nobody", T0, T0 + 600, 60.0, T0 + 600)
        assert r.at == []
        assert r.gaps == [(T0, T0 + 600)]


class TestRollupsAndRetention:
    """Hours roll into minutes exactly, and expired chunks leave whole."""

    def test_minute_buckets_are_exact(self, engine: SqliteEngine, clock: FakeClock) -> None:
        """Two hours of 1-Hz samples: each full minute has 60 samples and avg/min/max of its cpu values."""
        engine.write([], [row()])
        write_hours(engine, clock, 2)
        clock.advance(3600)
        engine.maintain(clock.now)
        r = engine.query("n1", T0, T0 + 7199, 60.0, clock.now)
        assert r.tier == "1m"
        assert len(r.at) == 120
        assert r.gaps == []
        assert set(r.count) == {60}
        # Minute 0 holds seq 1-60, so cpu = 1..60: avg 30.5, min 1, max 60.
        assert (r.avg["cpu_percent"][0], r.min and r.min["cpu_percent"][0], r.max and r.max["cpu_percent"][0]) == (
            30.5,
            1.0,
            60.0,
        )

    def test_consolidation_does_not_change_the_numbers(self, engine: SqliteEngine, clock: FakeClock) -> None:
        """An hour's partial buckets merged into one row answer exactly as the partials did."""
        engine.write([], [row()])
        write_hours(engine, clock, 1)
        before = engine.query("n1", T0, T0 + 3599, 60.0, clock.now)
        clock.advance(3600)
        report = engine.maintain(clock.now)
        assert report.segments_consolidated >= 1
        after = engine.query("n1", T0, T0 + 3599, 60.0, clock.now)
        assert (before.at, before.avg, before.min, before.max) == (after.at, after.avg, after.min, after.max)
        assert len(after.at) == 60

    def test_samples_not_compacted_yet_are_in_every_tier(self, engine: SqliteEngine, clock: FakeClock) -> None:
        """Ten minutes just committed (still in the head): the 1-min answer has them, no gap at the end."""
        engine.write([], [row()])
        engine.write(samples(600), [])
        r = engine.query("n1", T0, T0 + 599, 60.0, T0 + 600)
        assert r.tier == "1m"
        assert (len(r.at), r.count, r.gaps) == (10, [60] * 10, [])

    def test_retention_drops_whole_expired_chunks(self, engine: SqliteEngine, clock: FakeClock) -> None:
        """Two hours of raw data, 25 h later: the first hour's chunk is gone, the minute rollups stay."""
        engine.write([], [row()])
        write_hours(engine, clock, 2)
        clock.advance(3600)
        engine.maintain(clock.now)
        clock.now = T0 + DAY + 3600
        report = engine.maintain(clock.now)
        assert report.chunks_dropped["raw"] == 1
        assert engine.query("n1", T0, T0 + 3599, 1.0, clock.now).tier == "1m"
        raw = engine.load_recent(T0)["n1"]
        assert raw.seq[0] == 3601  # the first hour left as one chunk
        assert len(engine.query("n1", T0, T0 + 3599, 60.0, clock.now).at) == 60

    def test_a_late_replay_adds_to_its_hours_buckets(self, engine: SqliteEngine, clock: FakeClock) -> None:
        """The second half-hour arrives after the hour was consolidated: it still joins that hour's buckets."""
        engine.write([], [row()])
        engine.write(samples(1800), [])
        clock.advance(2 * 3600)
        engine.maintain(clock.now)
        engine.maintain(clock.now)  # the second pass compacts the head written before the jump
        engine.write(samples(1800, 1801, T0 + 1800), [])
        for _ in range(3):
            clock.advance(200)
            engine.maintain(clock.now)
        r = engine.query("n1", T0, T0 + 3599, 60.0, clock.now)
        assert (len(r.at), set(r.count), r.gaps) == (60, {60}, [])
        hourly = engine.query("n1", T0, T0 + 3599, 3600.0, clock.now)
        assert (hourly.tier, hourly.count) == ("1h", [3600])


class TestOpenFailures:
    """Every way the store can fail to open names the file and what to do."""

    def test_second_opener_is_refused(self, engine: SqliteEngine, tmp_path: Path, clock: FakeClock) -> None:
        """A second collector on the same data dir is refused, naming the lock and the first one's pid."""
        with pytest.raises(StoreLockedError, match=r"collector\.lock: another collector \(pid \d+\)"):
            SqliteEngine(tmp_path / "data", wall_clock=clock)

    def test_the_lock_is_released_on_close(self, tmp_path: Path, clock: FakeClock) -> None:
        """After the first collector closes, a second one opens the same dir."""
        SqliteEngine(tmp_path, wall_clock=clock).close()
        SqliteEngine(tmp_path, wall_clock=clock).close()

    def test_corrupt_file_is_refused(self, tmp_path: Path, clock: FakeClock) -> None:
        """A database file of garbage bytes is refused, naming it and saying to move it aside."""
        (tmp_path / DB_NAME).write_bytes(b"\x00garbage" * 1000)
        with pytest.raises(StoreCorruptError, match=rf"{DB_NAME}: not an SQLite database; move the file aside"):
            SqliteEngine(tmp_path, wall_clock=clock)

    def test_truncated_database_is_refused(self, tmp_path: Path, clock: FakeClock) -> None:
        """A real store cut in half (a bad copy) is refused as damaged, not half-read."""
        e = SqliteEngine(tmp_path, wall_clock=clock)
        e.write(samples(5000), [row()])
        e.close()
        path = tmp_path / DB_NAME
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] + b"\xff" * 4096 + data[len(data) // 2 + 4096 :])
        with pytest.raises(StoreCorruptError, match="damaged database"):
            SqliteEngine(tmp_path, wall_clock=clock)

    def test_foreign_database_is_refused(self, tmp_path: Path, clock: FakeClock) -> None:
        """A valid SQLite file of another application is left untouched and refused."""
        other = sqlite3.connect(tmp_path / DB_NAME)
        other.execute("CREATE TABLE recipes (name TEXT)")
        other.commit()
        other.close()
        with pytest.raises(StoreForeignError, match="another application; this is not a nodewatch store"):
            SqliteEngine(tmp_path, wall_clock=clock)
        other = sqlite3.connect(tmp_path / DB_NAME)
        assert other.execute("SELECT name FROM sqlite_master").fetchall() == [("recipes",)]
        other.close()

    def test_unwritable_data_dir_names_the_path_and_reason(self, tmp_path: Path, clock: FakeClock) -> None:
        """A data dir under a regular file cannot be created: the error names the path and why."""
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "data"
        with pytest.raises(StoreUnwritableError, match=rf"{target}: cannot create the data dir \(Not a directory\)"):
            SqliteEngine(target, wall_clock=clock)

    def test_newer_schema_is_refused(self, tmp_path: Path, clock: FakeClock) -> None:
        """A store written by a newer nodewatch is refused rather than downgraded."""
        SqliteEngine(tmp_path, wall_clock=clock).close()
        conn = sqlite3.connect(tmp_path / DB_NAME)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        with pytest.raises(StoreTooNewError, match="schema version 99, this nodewatch knows up to"):
            SqliteEngine(tmp_path, wall_clock=clock)


class TestMigration:
    """A store made by schema v1 opens with its data, migrated to the current version."""

    def test_v1_store_migrates_and_keeps_its_registry(self, tmp_path: Path, clock: FakeClock) -> None:
        """A v1 file with one node opens as the current version; the node is still there; each step is recorded."""
        conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
        assert migrate(conn, 1, T0) == [1]
        conn.execute(
            "INSERT INTO nodes (node_id, instance_id, facts, interval_s, state, state_since_at, last_seq) "
            "VALUES ('old', 'i0', x'80', 2.0, 'offline', ?, 42)",
            (T0,),
        )
        conn.close()
        e = SqliteEngine(tmp_path, wall_clock=clock)
        try:
            assert [(n.node_id, n.last_seq, n.interval_s) for n in e.load_nodes()] == [("old", 42, 2.0)]
        finally:
            e.close()
        conn = sqlite3.connect(tmp_path / DB_NAME)
        assert [v for (v,) in conn.execute("SELECT version FROM migrations ORDER BY version")] == [1, 2]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        conn.close()


class TestDiskFull:
    """A full disk fails the commit as a whole with a disk-full error; writes resume when space returns."""

    def test_sqlite_full_is_reported_and_recovers(self, tmp_path: Path, clock: FakeClock) -> None:
        """Capped below its size, the file cannot grow: SQLITE_FULL, nothing of the commit kept; uncapped, it heals."""
        e = SqliteEngine(tmp_path, wall_clock=clock, max_bytes=1)
        try:
            e.write(samples(10), [row()])
            with pytest.raises(StoreWriteError, match="disk full") as info:
                e.write(samples(20_000, 11, T0 + 10), [])
            assert info.value.disk_full
            assert e.load_nodes()[0].last_seq == 10
            e.max_bytes = None
            e.write(samples(20_000, 11, T0 + 10), [])
            assert e.load_nodes()[0].last_seq == 20_010
        finally:
            e.close()


class TestSameNumbersAsTheRing:
    """After a restart the history ring can show exactly what it showed before."""

    def test_store_round_trip_equals_ring_round_trip(self, engine: SqliteEngine) -> None:
        """Edge values (clamped, missing, float32-rounded) come back from the store as the ring returns them."""
        values: list[tuple[float | None, ...]] = [
            (12.34, 99.99, 0.01, 1234.5678, 0.0, None, 3.0e38),
            (-3.0, 150.0, 1e9, 1e40, 7.1, 0.1, None),
            (None, None, None, None, None, None, None),
        ]
        ring = HistoryRing(10)
        batch = []
        for i, v in enumerate(values, start=1):
            ring.add(i, T0 + i, v)
            batch.append(Sample("n1", "i1", i, T0 + i, v))
        engine.write(batch, [row()])
        wire = ring.to_wire()
        stored = engine.load_recent(T0)["n1"]
        assert stored.seq == wire["seq"]
        assert stored.sampled_at == wire["sampled_at"]
        assert dict(zip(SERIES, stored.series, strict=True)) == {name: wire[name] for name in SERIES}
