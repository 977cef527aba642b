"""The loop's side of the store with a real writer and SQLite file: acks follow commits, holes force a replay."""

from __future__ import annotations

from pathlib import Path

from collector.store.durability import AckAction, AckGate
from collector.store.link import StoreLink
from collector.store.model import Durable, NodeRow
from collector.store.sqlite_engine import SqliteEngine
from collector.store.writer import StoreWriter

T0 = 1_700_000_000.0
NOW = 1000.0  # monotonic
VALUES = (12.5, 40.0, 0.5, 100.0, 200.0, 0.0, 50.0)
# Commits only when a test flushes.
NEVER_S = 3600.0


class Loop:
    """Stands in for loop.call_soon_threadsafe: collects the writer's reports to hand to the link on 'the loop'."""

    def __init__(self) -> None:
        self.reports: list[list[Durable]] = []

    def __call__(self, durables: list[Durable]) -> None:
        self.reports.append(durables)

    def run(self, link: StoreLink[StoreWriter]) -> list[AckAction]:
        """Deliver the queued reports, as the event loop would."""
        actions = [a for durables in self.reports for a in link.committed(durables, NOW)]
        self.reports.clear()
        return actions


def start(path: Path, loop: Loop, queue_max: int = 1000) -> StoreLink[StoreWriter]:
    """A link over a started writer on ``path``, restored from what the store holds."""
    engine = SqliteEngine(path, wall_clock=lambda: T0)
    writer = StoreWriter(engine, loop, commit_interval_s=NEVER_S, maintain_interval_s=NEVER_S, queue_max=queue_max)
    restored = {row.node_id: (row.instance_id, row.last_seq) for row in engine.load_nodes()}
    writer.start()
    return StoreLink(writer, AckGate(interval_s=5.0), restored)


class TestStoreLink:
    """What an agent would see in its acks."""

    def test_acks_cover_only_committed_samples_and_survive_a_restart(self, tmp_path: Path) -> None:
        """Before the commit the ack stays at 0; after it, 3; after a restart the hello is acked 3."""
        loop = Loop()
        link = start(tmp_path, loop)
        assert link.hello("n1", "i1", None, NOW) == 0
        link.put_node(NodeRow("n1", "i1", b"\x80", 1.0, "online", T0))
        assert [link.heartbeat("n1", "i1", s, T0 + s, VALUES) for s in (1, 2, 3)] == [0, 0, 0]
        assert link.writer.flush()
        assert loop.run(link) == [AckAction("n1", "i1", 3)]
        assert link.ack_seq("n1") == 3
        link.writer.close()
        link = start(tmp_path, Loop())
        try:
            assert link.hello("n1", "i1", None, NOW) == 3
            assert link.hello("n1", "i2", None, NOW) == 0  # a new agent instance starts from nothing
        finally:
            link.writer.close()

    def test_a_full_queue_holds_acks_below_the_hole_until_a_resync(self, tmp_path: Path) -> None:
        """Queue of 2: seq 3 is refused; seq 4 would fit once the queue drained, but acks stay at 2 until a replay."""
        loop = Loop()
        link = start(tmp_path, loop, queue_max=2)
        try:
            link.hello("n1", "i1", None, NOW)
            for s in (1, 2, 3):
                link.heartbeat("n1", "i1", s, T0 + s, VALUES)
            assert link.health().status == "degraded"
            assert link.writer.flush()
            assert loop.run(link) == [AckAction("n1", "i1", 2)]
            assert link.heartbeat("n1", "i1", 4, T0 + 4, VALUES) == 2  # room again, but 4 must not pass the hole
            assert link.writer.flush()
            assert loop.run(link) == []
            assert link.ack_seq("n1") == 2
            assert link.resyncs() == ["n1"]
            assert link.hello("n1", "i1", None, NOW) == 2  # the agent replays 3 and 4
            assert [link.heartbeat("n1", "i1", s, T0 + s, VALUES) for s in (3, 4)] == [2, 2]
            assert link.writer.flush()
            loop.run(link)
            assert link.ack_seq("n1") == 4
            assert link.resyncs() == []
            assert link.health().status == "ok"
            assert link.writer.backend.load_recent(0.0)["n1"].seq == [1, 2, 3, 4]  # gap-free, nothing twice
        finally:
            link.writer.close()
