"""A replayed sample shows once in a node's recent history: the ring skips a seq it holds, within one agent instance.

The real-collector test fills the store's queue for real (``queue_max`` 0: every sample refused), so the
agent's replay after the resync brings seqs the ring already took. Not here: the store's own exactness
(tests/collector/store/) and the ring's widths (tests/collector/test_history.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from collector.app import RUNTIME_KEY
from collector.cache import NodeCache
from collector.history import HistoryRing
from collector.store.writer import QUEUE_MAX
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import WALL_T0, heartbeat, hello

VALUES = (10.0, 40.0, 0.5, 1.0, 2.0, 3.0, 4.0)


def seqs(ring: HistoryRing) -> list[int]:
    """The ring's seqs, oldest first."""
    return [seq for seq, _, _ in ring.points()]


class TestHistoryRing:
    def test_a_seq_held_already_is_skipped(self) -> None:
        """Seqs 2 and 3 come again after 1-4: the ring keeps one point each and says so."""
        ring = HistoryRing(10)
        for seq in (1, 2, 3, 4):
            assert ring.add(seq, WALL_T0 + seq, VALUES)
        assert not ring.add(2, WALL_T0 + 2, VALUES)
        assert not ring.add(3, WALL_T0 + 3, VALUES)
        assert ring.add(5, WALL_T0 + 5, VALUES)
        assert seqs(ring) == [1, 2, 3, 4, 5]

    def test_a_new_run_takes_seqs_an_older_instance_used(self) -> None:
        """After a take-over the new instance's seq 1 is a new point, though the old instance's 1 is still held."""
        ring = HistoryRing(10)
        for seq in (1, 2, 3):
            ring.add(seq, WALL_T0 + seq, VALUES)
        ring.new_run()
        assert ring.add(1, WALL_T0 + 4, VALUES)
        assert not ring.add(1, WALL_T0 + 4, VALUES)
        assert seqs(ring) == [1, 2, 3, 1]

    def test_a_lower_seq_not_held_starts_a_new_run(self) -> None:
        """A seq below the newest that the ring lacks is kept, and later copies of it are skipped."""
        ring = HistoryRing(10)
        for seq in (5, 6):
            ring.add(seq, WALL_T0 + seq, VALUES)
        assert ring.add(2, WALL_T0 + 7, VALUES)
        assert not ring.add(2, WALL_T0 + 7, VALUES)
        assert ring.add(3, WALL_T0 + 8, VALUES)
        assert seqs(ring) == [5, 6, 2, 3]

    def test_a_full_ring_still_finds_what_it_holds(self) -> None:
        """Past its capacity the ring holds the newest points, and a replay of one of them adds nothing."""
        ring = HistoryRing(4)
        for seq in range(1, 11):
            ring.add(seq, WALL_T0 + seq, VALUES)
        assert not ring.add(8, WALL_T0 + 8, VALUES)
        assert ring.add(11, WALL_T0 + 11, VALUES)
        assert seqs(ring) == [8, 9, 10, 11]

    def test_a_resized_ring_keeps_its_points_and_its_run(self) -> None:
        """A resize keeps the newest points as stored, and what counts as a replay."""
        ring = HistoryRing(10)
        for seq in (1, 2, 3):
            ring.add(seq, WALL_T0 + seq, VALUES)
        ring.new_run()
        ring.add(1, WALL_T0 + 4, VALUES)
        smaller = ring.resized(3)
        assert [(s, at) for s, at, _ in smaller.points()] == [(2, WALL_T0 + 2), (3, WALL_T0 + 3), (1, WALL_T0 + 4)]
        assert list(smaller.points())[-1][2] == next(ring.points())[2]
        assert smaller.add(2, WALL_T0 + 5, VALUES)  # the new instance's 2: not the old instance's
        assert not smaller.add(1, WALL_T0 + 4, VALUES)

    def test_a_loaded_ring_skips_a_replay_of_its_newest_count(self) -> None:
        """Points restored from the store count as held: replaying the newest of them adds nothing."""
        ring = HistoryRing(10)
        source = HistoryRing(10)
        for seq in (7, 8, 1, 2, 3):
            source.add(seq, WALL_T0 + seq, VALUES)
        source_points = list(source.points())
        ring.load(
            [p[0] for p in source_points],
            [p[1] for p in source_points],
            [source._series[i] for i in range(len(VALUES))],
        )
        assert not ring.add(2, WALL_T0 + 2, VALUES)
        assert ring.add(4, WALL_T0 + 4, VALUES)
        assert seqs(ring) == [7, 8, 1, 2, 3, 4]


class TestNodeCacheReplay:
    def test_a_rewound_replay_is_stored_again_but_is_no_new_sample(self) -> None:
        """After a rewind the cache takes the replayed seqs as new (the store needs them) without a second point."""
        cache = NodeCache()
        cache.hello(hello(), 1, 0.0, WALL_T0)
        for seq in (1, 2, 3):
            cache.heartbeat("node-a", 1, heartbeat(seq), float(seq), WALL_T0 + seq)
        cache.rewind("node-a", "inst-1", 1)
        result = cache.heartbeat("node-a", 1, heartbeat(2, cpu=77.0), 4.0, WALL_T0 + 4)
        assert (result.ack_seq, result.duplicate, result.current) == (2, False, True)
        assert [c.kind.value for c in result.changes] == [1]  # status only: no sample to fan out or judge
        record = cache.get("node-a")
        assert record is not None
        assert seqs(record.history) == [1, 2, 3]
        assert record.last_sample is not None
        assert record.last_sample.seq == 3

    def test_a_new_instance_after_a_take_over_gets_its_own_points(self) -> None:
        """Seq 1 of a new agent instance is a new point next to the old instance's 1..3."""
        cache = NodeCache()
        cache.hello(hello(), 1, 0.0, WALL_T0)
        for seq in (1, 2, 3):
            cache.heartbeat("node-a", 1, heartbeat(seq), float(seq), WALL_T0 + seq)
        cache.close("node-a", 1, clean=True, now=4.0, wall=WALL_T0 + 4)
        cache.hello(hello(instance="inst-2"), 2, 5.0, WALL_T0 + 5)
        cache.heartbeat("node-a", 2, heartbeat(1), 6.0, WALL_T0 + 6)
        record = cache.get("node-a")
        assert record is not None
        assert seqs(record.history) == [1, 2, 3, 1]


class TestRealCollector:
    async def test_samples_the_store_refused_show_once_after_the_replay(
        self, make_client: MakeClient, tmp_path: Path
    ) -> None:
        """A full store queue refuses 1-3; the agent reconnects and replays them: its history has 1-4 once each."""
        client = await make_client(data_dir=tmp_path)
        store = client.app[RUNTIME_KEY].store
        assert store is not None
        store.writer.queue_max = 0  # full: every sample refused, none acked
        ws, _ = await connect_agent(client, hello(sent_at=time.time(), newest_seq=0))
        for seq in (1, 2, 3):
            ack = await send_heartbeat(ws, heartbeat(seq, sampled_at=time.time()))
            assert ack.seq == 0
        await ws.close()
        store.writer.queue_max = QUEUE_MAX
        ws, ack = await connect_agent(client, hello(sent_at=time.time(), newest_seq=3))
        assert ack.seq == 0  # the store holds nothing of this instance: the agent replays it all
        for seq in (1, 2, 3, 4):
            await send_heartbeat(ws, heartbeat(seq, sampled_at=time.time()))
        node = await (await client.get("/api/v1/nodes/node-a")).json()
        assert node["history"]["seq"] == [1, 2, 3, 4]
        assert node["last_sample"]["seq"] == 4
        await ws.close()
