"""The restart's recent window: head batches decoded per node, and read in slices of nodes like one pass."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.codec import Batch, Columns, encode_batch, to_stored
from collector.store.model import NodeRow, Sample
from collector.store.sqlite_engine import SqliteEngine
from collector.store.sqlite_reader import decode_heads
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


def _batch(rows: list[tuple[int, int, int, float]]) -> bytes:
    """One head batch of (node_idx, inst_idx, seq, sampled_at) rows, sorted by node and instance as commits are."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    values = (1.0, 2.0, 0.5, 0.0, 0.0, None, 1.0)
    cols = Columns.of([(seq, at, to_stored(values)) for _, _, seq, at in rows])
    return encode_batch(Batch(array("I", [r[0] for r in rows]), array("I", [r[1] for r in rows]), cols))


class TestDecodeHeads:
    """Head batches back as each (node, instance)'s points, as the restart and history reads see them."""

    def test_runs_per_node_and_instance_in_time_order(self) -> None:
        """Commits interleave nodes and instances; a replay committed late still comes back in time order."""
        first = _batch([(2, 1, 1, T0), (1, 1, 1, T0), (1, 2, 7, T0 + 0.5)])
        second = _batch([(1, 1, 2, T0 + 1), (2, 1, 2, T0 + 1)])
        late = _batch([(2, 1, 3, T0 + 0.5)])  # sampled between seq 1 and 2, committed after both
        runs = decode_heads([first, second, late])
        assert list(runs) == [(1, 1), (1, 2), (2, 1)]
        assert runs[1, 1].seq.tolist() == [1, 2]
        assert runs[1, 2].seq.tolist() == [7]
        assert runs[2, 1].seq.tolist() == [1, 3, 2]
        assert runs[2, 1].at_us.tolist() == [round(T0 * 1e6), round((T0 + 0.5) * 1e6), round((T0 + 1) * 1e6)]

    def test_one_node_only(self) -> None:
        """With ``node_idx`` only that node's runs are decoded."""
        runs = decode_heads([_batch([(1, 1, 1, T0), (2, 1, 1, T0)])], node_idx=2)
        assert list(runs) == [(2, 1)]
