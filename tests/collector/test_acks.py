"""Ack pacing on a real collector: acks at the cadence the agent asked for (the rules: test_ingest_session.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from collector.app import create_app
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack
from tests.support.collector import connect_agent, fast_config
from tests.support.messages import heartbeat, hello


async def acks_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[int]:
    """Every ack seq the collector sends in the next ``seconds``."""
    seqs: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        assert msg.type is WSMsgType.BINARY, f"expected acks only, got {msg.type!r}"
        ack = decode(msg.data, COLLECTOR_LIMITS)
        assert isinstance(ack, Ack)
        seqs.append(ack.seq)
    return seqs


class TestCollectorAckCadence:
    async def test_acks_follow_ack_every_and_the_interval(self, aiohttp_client: Any) -> None:
        """ack_every=4: acks for seq 4 and 8 only; seq 9 waits for the ack timer (tests/collector/test_timers.py)."""
        client = await aiohttp_client(create_app(fast_config()))
        ws, ack = await connect_agent(client, hello(ack_every=4))
        assert ack.seq == 0  # the hello is acked at once, whatever ack_every says
        for seq in range(1, 10):
            await ws.send_bytes(encode(heartbeat(seq)))
        assert await acks_within(ws, 0.5) == [4, 8]
        # Every heartbeat was applied, acked or not: the ack is only about what the agent may forget.
        resp = await client.get("/api/v1/nodes/node-a")
        assert (await resp.json())["history"]["seq"] == list(range(1, 10))
        await ws.close()

    async def test_hello_without_ack_every_gets_an_ack_per_heartbeat(self, aiohttp_client: Any) -> None:
        """Agents that predate ack_every keep the old contract: every heartbeat is acked."""
        client = await aiohttp_client(create_app(fast_config()))
        ws, _ = await connect_agent(client, hello())
        for seq in range(1, 6):
            await ws.send_bytes(encode(heartbeat(seq)))
        assert await acks_within(ws, 0.5) == [1, 2, 3, 4, 5]
        await ws.close()

    async def test_reconnect_hello_acks_what_the_pacer_held_back(self, aiohttp_client: Any) -> None:
        """Samples left unacked when a connection ends are acked by the next hello: the agent never resends them."""
        client = await aiohttp_client(create_app(fast_config()))
        ws, _ = await connect_agent(client, hello(ack_every=100))
        for seq in range(1, 4):
            await ws.send_bytes(encode(heartbeat(seq)))
        assert await acks_within(ws, 0.3) == []
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        ws2, ack = await connect_agent(client, hello(ack_every=100))
        assert ack.seq == 3
        await ws2.close()
