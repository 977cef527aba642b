"""Registry refresh (``DurableStore.refresh``): every connected node's row is rewritten once a round, a slice per call.

Real parts: a ``NodeCache`` fed hellos and heartbeats, a ``DurableStore`` on a tmp data dir with its
writer process, and the registry read back from the file.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from collector.cache import NodeCache
from collector.config import CollectorConfig
from collector.store.service import REFRESH_INTERVAL_S, ROW_REFRESH_S, DurableStore
from tests.support.messages import WALL_T0, heartbeat, hello

NODES = 120
CALLS_PER_ROUND = round(ROW_REFRESH_S / REFRESH_INTERVAL_S)


def connected_cache() -> NodeCache:
    """NODES nodes, each connected and with one sample, none of them in the store yet."""
    cache = NodeCache()
    for n in range(NODES):
        node_id = f"n{n:03d}"
        cache.hello(hello(node_id), n + 1, 1000.0, WALL_T0)
        cache.heartbeat(node_id, n + 1, heartbeat(1, sampled_at=WALL_T0 + 1), 1001.0, WALL_T0 + 1)
    return cache


async def test_one_round_of_refresh_calls_rewrites_every_connected_row_a_slice_at_a_time(tmp_path: Path) -> None:
    """A call rewrites 1/60 of the fleet's rows (never all 10,000 at once); a round of calls rewrites every one."""
    cache = connected_cache()
    store = DurableStore.open(CollectorConfig(data_dir=tmp_path), cache, time.monotonic, time.time)
    store.start(asyncio.get_running_loop())
    try:
        store.refresh()
        assert await asyncio.to_thread(store.writer.flush, 15.0)
        first = store.engine.reader.load_nodes()
        assert len(first) == NODES // CALLS_PER_ROUND
        for _ in range(CALLS_PER_ROUND - 1):
            store.refresh()
        assert await asyncio.to_thread(store.writer.flush, 15.0)
        rows = store.engine.reader.load_nodes()
        assert [row.node_id for row in rows] == [f"n{n:03d}" for n in range(NODES)]
        assert all(row.last_seq == 1 and row.last_seen_at is not None for row in rows)
    finally:
        await store.close()
