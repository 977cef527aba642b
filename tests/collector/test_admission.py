"""Accept-time admission: past max_nodes + connection_margin open connections, ingest gets 503, health still answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from collector.admission import AdmissionSite
from collector.app import RUNTIME_KEY, create_app
from collector.config import CollectorConfig
from shared.codec import encode
from tests.support.messages import hello


@pytest.fixture
async def capped_url() -> AsyncIterator[str]:
    """A collector on 127.0.0.1 behind an AdmissionSite allowing 2 open connections (max_nodes 1 + margin 1)."""
    config = CollectorConfig(max_nodes=1, connection_margin=1)
    app = create_app(config)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = AdmissionSite(runner, "127.0.0.1", 0, limit=2, on_refused=app[RUNTIME_KEY].refused_busy)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class TestAdmission:
    """New ingest connections past the connection limit."""

    async def test_ingest_past_limit_gets_503_and_health_still_answers(self, capped_url: str) -> None:
        """With 2 ingest websockets open, a third ingest gets a JSON 503 while /api/v1/health still answers 200."""
        async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
            ws1 = await first.ws_connect(capped_url + "/api/v1/ingest", heartbeat=None)
            await ws1.send_bytes(encode(hello("node-a", "inst-a")))
            await ws1.receive(timeout=5)  # the ack: node-a is held
            ws2 = await second.ws_connect(capped_url + "/api/v1/ingest", heartbeat=None)
            async with aiohttp.ClientSession() as third:
                async with third.get(capped_url + "/api/v1/ingest") as response:
                    assert response.status == 503
                    assert (await response.json())["error"] == "capacity_reached"
                async with third.get(capped_url + "/api/v1/health") as response:
                    assert response.status == 200
                    assert (await response.json())["nodes"]["total"] == 1
                async with third.get(capped_url + "/metrics") as response:
                    assert 'reason="connection_limit"} 1.0' in await response.text()
            await ws2.close()
            await ws1.close()

    async def test_ingest_under_limit_is_upgraded(self, capped_url: str) -> None:
        """Under the limit an ingest request is upgraded and its hello acked as usual."""
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(capped_url + "/api/v1/ingest", heartbeat=None) as ws,
        ):
            await ws.send_bytes(encode(hello("node-a", "inst-a")))
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.BINARY
