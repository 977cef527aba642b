"""The writer thread: grouped commits reported back, a full queue refused, a full disk degraded then healed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from collector.store.model import Durable, MaintenanceReport, NodeRow, RangeResult, RawPoints, Sample, StoreWriteError
from collector.store.sqlite_engine import SqliteEngine
from collector.store.writer import StoreWriter

T0 = 1_700_000_000.0
# Commits only when a test flushes: the real ~1 s tick never fires during a test.
NEVER_S = 3600.0


def sample(seq: int, node_id: str = "n1") -> Sample:
    """One 1-Hz sample of ``node_id``."""
    return Sample(node_id, "i1", seq, T0 + seq, (10.0, 20.0, 0.5, 1.0, 2.0, 3.0, 4.0))


def node(node_id: str = "n1") -> NodeRow:
    """A registry row for ``node_id``."""
    return NodeRow(node_id, "i1", b"\x80", 1.0, "online", T0)


class Reports:
    """Collects what the writer says is durable, as the event loop would."""

    def __init__(self) -> None:
        self.items: list[Durable] = []
        self.lock = threading.Lock()

    def __call__(self, durables: list[Durable]) -> None:
        with self.lock:
            self.items.extend(durables)


@pytest.fixture
def reports() -> Reports:
    """The durable-seq callback."""
    return Reports()


def make_writer(path: Path, reports: Reports, **kwargs: object) -> tuple[SqliteEngine, StoreWriter]:
    """A started writer on a fresh engine in ``path``."""
    engine = SqliteEngine(path, max_bytes=kwargs.pop("max_bytes", None))  # type: ignore[arg-type]
    writer = StoreWriter(engine, reports, commit_interval_s=NEVER_S, maintain_interval_s=NEVER_S, **kwargs)  # type: ignore[arg-type]
    writer.start()
    return engine, writer


class TestStoreWriter:
    """What the ingest shell sees of the writer."""

    def test_a_commit_reports_the_highest_seq_per_node(self, tmp_path: Path, reports: Reports) -> None:
        """Three samples of one node and one of another commit together: one report per node, highest seq."""
        _, writer = make_writer(tmp_path, reports)
        try:
            writer.put_node(node())
            for item in (sample(1), sample(2), sample(3), sample(7, "n2")):
                assert writer.append(item)
            assert reports.items == []  # nothing is durable before the commit
            assert writer.flush()
            assert sorted(reports.items) == [Durable("n1", "i1", 3), Durable("n2", "i1", 7)]
            assert writer.health().status == "ok"
            assert writer.health().committed_samples == 4
        finally:
            writer.close()

    def test_a_full_queue_refuses_and_says_degraded(self, tmp_path: Path, reports: Reports) -> None:
        """With room for 5 queued samples the 6th is refused and counted; health names the full queue."""
        _, writer = make_writer(tmp_path, reports, queue_max=5)
        try:
            assert [writer.append(sample(s)) for s in range(1, 7)] == [True] * 5 + [False]
            health = writer.health()
            assert (health.status, health.refused_samples) == ("degraded", 1)
            assert health.reason == "store queue full (5 samples waiting for the disk)"
            assert writer.flush()
            assert writer.health().status == "ok"  # recovered by itself once the queue drained
        finally:
            writer.close()

    def test_disk_full_degrades_keeps_the_batch_and_recovers(self, tmp_path: Path, reports: Reports) -> None:
        """A real SQLITE_FULL: no durable report, health says disk full; once space returns, the same samples commit."""
        engine, writer = make_writer(tmp_path, reports, max_bytes=1, batch_max=100_000)
        try:
            writer.put_node(node())
            for s in range(1, 20_001):
                writer.append(sample(s))
            assert not writer.flush()
            health = writer.health()
            assert health.status == "degraded"
            assert health.reason is not None
            assert health.reason.startswith("disk full: database or disk is full")
            assert health.pending == 20_000
            assert reports.items == []
            engine.max_bytes = None  # space returns
            assert writer.flush()
            assert reports.items == [Durable("n1", "i1", 20_000)]
            health = writer.health()
            assert (health.status, health.lost_samples, health.commit_failures >= 1) == ("ok", 0, True)
        finally:
            writer.close()
        reopened = SqliteEngine(tmp_path)
        try:
            assert reopened.load_nodes()[0].last_seq == 20_000
        finally:
            reopened.close()

    def test_close_commits_what_is_queued(self, tmp_path: Path, reports: Reports) -> None:
        """Samples appended just before shutdown are committed by close, not lost."""
        _, writer = make_writer(tmp_path, reports)
        writer.put_node(node())
        writer.append(sample(1))
        writer.close()
        assert reports.items == [Durable("n1", "i1", 1)]
        assert writer.health().lost_samples == 0


class TestRegistryThroughTheWriter:
    """Registry puts and removals reach the file in queue order."""

    def test_a_forgotten_node_does_not_come_back_after_a_restart(self, tmp_path: Path, reports: Reports) -> None:
        """The cache forgot node n2: after a restart only n1 is in the registry; a new hello revives n2."""
        _, writer = make_writer(tmp_path, reports)
        writer.put_node(node("n1"))
        writer.put_node(node("n2"))
        writer.append(sample(1, "n2"))
        assert writer.flush()
        writer.forget_node("n2")
        assert writer.flush()
        writer.close()
        reopened = SqliteEngine(tmp_path)
        try:
            assert [n.node_id for n in reopened.load_nodes()] == ["n1"]
            assert "n2" not in reopened.load_recent(0.0)
            reopened.write([], [node("n2")])
            assert [n.node_id for n in reopened.load_nodes()] == ["n1", "n2"]
            assert reopened.load_recent(0.0)["n2"].seq == [1]  # its history was kept
        finally:
            reopened.close()

    def test_maintenance_runs_on_the_writer_thread(self, tmp_path: Path, reports: Reports) -> None:
        """With maintenance due at every cycle, committed samples get compacted into chunks and stay readable."""
        clock = [T0]
        engine = SqliteEngine(tmp_path, wall_clock=lambda: clock[0], head_window_s=1.0)
        writer = StoreWriter(
            engine, reports, commit_interval_s=NEVER_S, maintain_interval_s=0.0, wall_clock=lambda: clock[0]
        )
        writer.start()
        try:
            writer.put_node(node())
            for s in range(1, 11):
                writer.append(sample(s))
            assert writer.flush()
            clock[0] += 10.0  # the head's window is over: the next cycles rotate it and compact it
            assert writer.flush()
            assert writer.flush()
            stats = engine.reader.stats()
            assert stats.get("raw_chunks") == 1
            assert (stats["head_0_rows"], stats["head_1_rows"]) == (0, 0)
            assert engine.load_recent(0.0)["n1"].seq == list(range(1, 11))
        finally:
            writer.close()


class MaintenanceFails:
    """A backend whose maintenance fails (an injected fault) while writes work: the real engine underneath."""

    def __init__(self, engine: SqliteEngine) -> None:
        self.engine = engine
        self.failing = True

    def write(self, samples: Sequence[Sample], nodes: Sequence[NodeRow], forgotten: Sequence[str] = ()) -> None:
        self.engine.write(samples, nodes, forgotten)

    def maintain(self, now_at: float) -> MaintenanceReport:
        if self.failing:
            raise StoreWriteError("damaged data: expected a zlib stream (test)", disk_full=False)
        return self.engine.maintain(now_at)

    def load_nodes(self) -> list[NodeRow]:
        return self.engine.load_nodes()

    def load_recent(self, since_at: float) -> dict[str, RawPoints]:
        return self.engine.load_recent(since_at)

    def query(self, node_id: str, from_at: float, to_at: float, step_s: float, now_at: float) -> RangeResult:
        return self.engine.query(node_id, from_at, to_at, step_s, now_at)

    def close(self) -> None:
        self.engine.close()


class TestMaintenanceFailure:
    """A failing compaction shows in health but does not stop commits or acks."""

    def test_commits_go_on_while_maintenance_fails(self, tmp_path: Path, reports: Reports) -> None:
        """Health says degraded with the maintenance reason, yet every flush commits and reports; then it clears."""
        backend = MaintenanceFails(SqliteEngine(tmp_path))
        writer = StoreWriter(backend, reports, commit_interval_s=NEVER_S, maintain_interval_s=0.0)
        writer.start()
        try:
            writer.append(sample(1))
            assert writer.flush()
            health = writer.health()
            assert (health.status, health.reason) == ("degraded", "store maintenance failed: damaged data: "
                                                      "expected a zlib stream (test)")  # fmt: skip
            writer.append(sample(2))
            assert writer.flush()
            assert reports.items == [Durable("n1", "i1", 1), Durable("n1", "i1", 2)]
            assert writer.accepting()  # a maintenance failure does not hold replays back
            backend.failing = False
            assert writer.flush()
            assert writer.health().status == "ok"
        finally:
            writer.close()
