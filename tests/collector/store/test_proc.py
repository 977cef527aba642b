"""The writer process: acks follow its commits, its death degrades the store without losing an acked sample."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector.store.durability import AckGate
from collector.store.link import StoreLink
from collector.store.model import Durable, NodeRow, Sample
from collector.store.proc import ProcessWriter
from collector.store.sqlite_engine import SqliteEngine

ROOT = Path(__file__).resolve().parents[3]
WAIT_S = 15.0  # a cold child start (imports, open) on 2 busy cores
# A parent that starts a writer process, prints its pid, and waits to be killed with SIGKILL.
PARENT = """
import sys, time
from pathlib import Path
from collector.store.proc import ProcessWriter
from collector.store.sqlite_engine import SqliteEngine

engine = SqliteEngine(Path(sys.argv[1]))
writer = ProcessWriter(engine.data_dir, "NORMAL", lambda durables: None)
writer.start()
print(writer.pid, flush=True)
time.sleep(600)
"""


class Reports:
    """Collects the commit reports the receiver thread hands over."""

    def __init__(self) -> None:
        self.durables: list[Durable] = []
        self.lock = threading.Lock()

    def __call__(self, durables: list[Durable]) -> None:
        with self.lock:
            self.durables.extend(durables)

    def highest(self, node_id: str) -> int:
        """The highest seq reported durable for ``node_id``."""
        with self.lock:
            return max((d.seq for d in self.durables if d.node_id == node_id), default=0)


def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what``."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def sample(seq: int) -> Sample:
    """Sample ``seq`` of node n1."""
    return Sample("n1", "i1", seq, 1_800_000_000.0 + seq, (10.0, 20.0, 0.5, 1e3, 2e3, None, 4.0))


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[SqliteEngine, ProcessWriter, Reports]]:
    """The parent's engine (lock, reads) and a started writer process on it."""
    engine = SqliteEngine(tmp_path)
    reports = Reports()
    writer = ProcessWriter(tmp_path, "NORMAL", reports)
    writer.start()
    writer.put_node(NodeRow("n1", "i1", b"\x80", 1.0, "online", time.time()))
    yield engine, writer, reports
    writer.close()
    engine.close()


class TestProcessWriter:
    def test_a_flush_returns_once_the_child_committed_and_the_parent_reads_it(
        self, started: tuple[SqliteEngine, ProcessWriter, Reports]
    ) -> None:
        """Samples handed to the writer process are reported durable, and the collector's reader sees every one."""
        engine, writer, reports = started
        for seq in range(1, 51):
            assert writer.append(sample(seq))
        assert writer.flush(WAIT_S)
        assert reports.highest("n1") == 50
        assert engine.load_recent(0.0)["n1"].seq == list(range(1, 51))
        health = writer.health()
        assert (health.status, health.queued, health.committed_samples) == ("ok", 0, 50)

    def test_a_killed_writer_process_degrades_and_nothing_more_is_acked(
        self, started: tuple[SqliteEngine, ProcessWriter, Reports]
    ) -> None:
        """kill -9 of the writer: health says degraded with the exit, samples are refused, no commit is reported."""
        engine, writer, reports = started
        assert writer.append(sample(1))
        assert writer.flush(WAIT_S)
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        until(lambda: writer.health().status == "degraded", "health degraded")
        reason = writer.health().reason
        assert reason is not None
        assert "writer process exited" in reason
        assert not writer.append(sample(2))
        assert not writer.accepting()
        assert not writer.flush(1.0)
        assert reports.highest("n1") == 1
        assert writer.health().refused_samples == 1
        assert engine.load_recent(0.0)["n1"].seq == [1]

    def test_the_writer_process_dies_with_a_killed_collector(self, tmp_path: Path) -> None:
        """kill -9 of the collector leaves no writer process behind to hold the database."""
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        try:
            assert parent.stdout is not None
            child_pid = int(parent.stdout.readline())
            parent.kill()
            parent.wait()

            def gone() -> bool:
                try:
                    os.kill(child_pid, 0)
                except ProcessLookupError:
                    return True
                return Path(f"/proc/{child_pid}/stat").read_text().split(")")[1].split()[0] == "Z"

            until(gone, "the writer process to exit")
        finally:
            parent.kill()
            parent.wait()
            if parent.stdout is not None:
                parent.stdout.close()

    def test_commit_reports_come_as_slot_seq_pairs_when_asked(self, tmp_path: Path) -> None:
        """With ``on_slots``, each commit arrives as (slot, highest seq) pairs naming the writer's own slots."""
        engine = SqliteEngine(tmp_path)
        pairs: list[int] = []
        writer = ProcessWriter(tmp_path, "NORMAL", Reports(), on_slots=pairs.extend)
        writer.start()
        try:
            a, b = writer.slot("n1", "i1"), writer.slot("n2", "i1")
            assert (a, b, writer.slot("n1", "i1")) == (0, 1, 0)
            for seq in range(1, 4):
                assert writer.append_slot(a, seq, 1_800_000_000.0 + seq, (1.0, 2.0, None, 3.0, 4.0, 5.0, 6.0))
            assert writer.append_slot(b, 9, 1_800_000_000.0, (1.0, 2.0, 0.5, 3.0, 4.0, None, None))
            assert writer.flush(WAIT_S)
            assert sorted(zip(pairs[::2], pairs[1::2], strict=True)) == [(a, 3), (b, 9)]
            assert engine.load_recent(0.0)["n1"].seq == [1, 2, 3]
        finally:
            writer.close()
            engine.close()

    def test_an_agent_restarting_again_and_again_leaves_one_live_slot(self, tmp_path: Path) -> None:
        """40 instances of one node in a row: each one's samples are stored, the slot table keeps only the last."""
        engine = SqliteEngine(tmp_path)
        pairs: list[int] = []
        writer = ProcessWriter(tmp_path, "NORMAL", Reports(), on_slots=pairs.extend)
        link = StoreLink(writer, AckGate(interval_s=5.0), {})
        writer.start()
        try:
            for n in range(40):
                link.hello("n1", f"i{n}", None, float(n))
                link.heartbeat("n1", f"i{n}", 1, 1_800_000_000.0 + n, (1.0, 2.0, 0.5, 3.0, 4.0, 5.0, 6.0))
            assert writer.flush(WAIT_S)
            assert link.gate.durable_seq("n1") == 0  # reports go to the gate through on_slots; here, to pairs
            assert (pairs[-2], pairs[-1]) == (writer.slot("n1", "i39"), 1)
            assert len(writer._names) == 1  # the bound itself: one name per node the gate knows
            health = writer.health()
            assert (health.status, health.committed_samples) == ("ok", 40)
        finally:
            writer.close()
            engine.close()
