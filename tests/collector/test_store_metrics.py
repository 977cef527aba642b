"""``/metrics`` shows the store's state: committed samples, and whether acks have stopped (degraded).

Before, only ``/api/v1/health`` said so: a Prometheus alert on a degraded store had nothing to read.
A real collector on loopback with a SQLite store in a temporary data dir, and a real websocket agent.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from collector.app import create_app
from tests.support.collector import connect_agent, fast_config, send_heartbeat
from tests.support.messages import heartbeat, hello

COMMITTED = "nodewatch_collector_store_committed_samples_total"
WAIT_S = 10.0  # commits are about 1 s apart; generous on 2 busy cores


def sample(text: str, name: str) -> float | None:
    """One unlabelled sample of the exposition ``text`` (None when absent)."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return None if found is None else float(found.group(1))


async def scrape(client: TestClient[Any, Any]) -> str:
    """The text of one /metrics scrape."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    return await resp.text()


async def test_metrics_count_committed_samples_and_show_the_store_healthy(aiohttp_client: Any, tmp_path: Path) -> None:
    """Two heartbeats: /metrics counts 2 committed samples, the store not degraded and never restarted."""
    client = await aiohttp_client(create_app(fast_config(data_dir=tmp_path)))
    ws, _ = await connect_agent(client, hello())
    for seq in (1, 2):
        await send_heartbeat(ws, heartbeat(seq, sampled_at=time.time() - (2 - seq)))
    async with asyncio.timeout(WAIT_S):
        while sample(text := await scrape(client), COMMITTED) != 2.0:  # noqa: ASYNC110 - polls real I/O
            await asyncio.sleep(0.05)
    assert sample(text, "nodewatch_collector_store_degraded") == 0.0
    assert sample(text, "nodewatch_collector_store_writer_restarts_total") == 0.0
    assert sample(text, "nodewatch_collector_store_lost_samples_total") == 0.0
    await ws.close()


async def test_without_a_store_there_are_no_store_families(aiohttp_client: Any) -> None:
    """An in-memory collector (--ephemeral) has no store, so /metrics shows none of its families."""
    client = await aiohttp_client(create_app(fast_config()))
    assert "nodewatch_collector_store_" not in await scrape(client)
