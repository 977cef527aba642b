"""The restart's recent window read in slices of nodes: the same points as one pass, each node in one slice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.model import NodeRow, Sample
from collector.store.sqlite_engine import SqliteEngine
from tests.support.clock import FakeClock

T0 = 1_700_000_000.0 // 86400 * 86400
NODES = [f"n{i}" for i in range(7)]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SqliteEngine]:
    """Seven nodes with 10 minutes of 1-Hz samples, half of them compacted into chunks, half still in the heads."""
    clock = FakeClock(T0)
    e = SqliteEngine(tmp_path / "data", wall_clock=clock)
    e.write([], [NodeRow(n, f"{n}-i", b"\x80", 1.0, "online", T0) for n in NODES])
    for t in range(600):
        values = (float(t % 100), 1.0, 0.5, 0.0, 0.0, None, 1.0)
        e.write([Sample(n, f"{n}-i", t + 1, T0 + t, values) for n in NODES], [])
        clock.advance(1.0)
        if t == 300:
            e.maintain(clock())
    yield e
    e.close()


class TestRecentSlices:
    """``SqliteReader.recent_slices``, which a restart uses to refill rings without holding the event loop."""

    @pytest.mark.parametrize("per_slice", [1, 3, 7, 100])
    def test_slices_hold_what_one_pass_holds(self, engine: SqliteEngine, per_slice: int) -> None:
        """Read by slices of any size, every node's window comes back whole, gap-free, and in exactly one slice."""
        assert engine.reader.stats()["raw_chunks"] > 0  # the window spans chunks and heads
        slices = list(engine.reader.recent_slices(T0 + 60, per_slice))
        assert len(slices) == -(-len(NODES) // per_slice)
        seen = [node_id for part in slices for node_id in part]
        assert sorted(seen) == NODES
        whole = engine.load_recent(T0 + 60)
        for part in slices:
            for node_id, points in part.items():
                assert points.columns.seq.tolist() == list(range(61, 601))
                cols, expected = points.columns, whole[node_id].columns  # bytes: NaN sentinels compare unequal
                assert [c.tobytes() for c in (cols.at_us, *cols.series)] == [
                    c.tobytes() for c in (expected.at_us, *expected.series)
                ]
