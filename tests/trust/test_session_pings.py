"""Finding 16b: an ingest session refuses a websocket ping flood, in memory and through a real collector's shell."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType

from collector.cache import NodeCache
from collector.cache_port import CachePort
from collector.ingest_session import Close, IngestSession
from shared.codec import encode
from shared.messages import Ack
from tests.support.collector import (
    RECEIVE_TIMEOUT_S,
    MakeClient,
    connect_agent,
    receive_message,
    send_heartbeat,
)
from tests.support.messages import WALL_T0, heartbeat, hello


def session() -> IngestSession:
    """A session over a real cache, after an accepted hello."""
    s = IngestSession(CachePort(NodeCache(), 1, lambda: WALL_T0), now=0.0)
    s.start()
    s.receive_frame(encode(hello(newest_seq=0)), 0.0)
    return s


def test_pings_at_the_reference_agents_rate_are_fine() -> None:
    """One ping every 10 s (the reference agent) for an hour never costs the connection anything."""
    s = session()
    assert all(s.receive_ping(10.0 * n) == () for n in range(1, 361))


def test_a_ping_flood_is_closed_with_4430() -> None:
    """Ten pings in a row are allowed; the eleventh within the same second gets an error and 4430 rate_exceeded."""
    s = session()
    for _ in range(10):
        assert s.receive_ping(1.0) == ()
    actions = s.receive_ping(1.0)
    closes = [a for a in actions if isinstance(a, Close)]
    assert [(c.code, c.reason) for c in closes] == [(4430, "rate_exceeded")]
    assert s.receive_ping(1.0) == ()  # closed: nothing more happens


class TestRealCollector:
    """Finding 16b on a real collector on loopback: the ingest shell feeds every ping to the budget."""

    async def test_a_ping_flood_is_closed_4430_and_an_honest_agent_is_unaffected(self, make_client: MakeClient) -> None:
        """A client sending 100 pings in a burst is closed 4430; an honest agent on the same collector is acked."""
        client = await make_client()
        honest, _ = await connect_agent(client, hello("node-honest", "inst-h"))
        flood = await client.ws_connect("/api/v1/ingest", autoping=False)
        await flood.send_bytes(encode(hello("node-flood", "inst-f")))
        assert isinstance(await receive_message(flood), Ack)
        for n in range(100):
            await flood.ping(b"%d" % n)
        pongs, closed = 0, None
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            while closed is None:
                msg = await flood.receive()
                if msg.type is WSMsgType.PONG:
                    pongs += 1
                elif msg.type is not WSMsgType.BINARY:  # the Error frame precedes the close
                    closed = (msg.type, msg.data, msg.extra)
        assert closed == (WSMsgType.CLOSE, 4430, "rate_exceeded")
        assert 10 <= pongs < 20  # the burst the budget allows (plus what 1/s refills meanwhile), never all 100
        ack = await send_heartbeat(honest, heartbeat(1))
        assert ack.seq == 1
        await honest.close()

    async def test_an_agents_occasional_ping_is_answered(self, make_client: MakeClient) -> None:
        """With aiohttp's autoping off, the collector still answers an agent's keep-alive ping with a pong."""
        client = await make_client()
        ws = await client.ws_connect("/api/v1/ingest", autoping=False)
        await ws.send_bytes(encode(hello()))
        assert isinstance(await receive_message(ws), Ack)
        await ws.ping(b"keep-alive")
        msg = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
        assert (msg.type, msg.data) == (WSMsgType.PONG, b"keep-alive")
        await ws.close()
