"""Ack pacing: the pure AckPacer, and a real collector acking at the cadence the agent asked for."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from collector.acks import ACK_INTERVAL_S, AckPacer
from collector.app import create_app
from collector.config import CollectorConfig
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack, Hello
from tests.collector.conftest import FAST
from tests.collector.helpers import FakeClock, connect_agent, facts, heartbeat, hello

T0 = 1000.0


def acked(pacer: AckPacer, times: list[float]) -> list[int]:
    """The 1-based indexes of the heartbeats (received at ``times``) that the pacer acks."""
    return [i for i, now in enumerate(times, start=1) if pacer.due(now)]


class TestAckPacer:
    def test_without_ack_every_every_heartbeat_is_acked(self) -> None:
        """An agent that asked for nothing (hello without ack_every) gets one ack per heartbeat, as before."""
        assert acked(AckPacer(None, ACK_INTERVAL_S, T0), [T0 + 0.1 * i for i in range(1, 8)]) == [1, 2, 3, 4, 5, 6, 7]

    def test_ack_every_counts_heartbeats(self) -> None:
        """With ack_every=3 and fast heartbeats, every third one is acked."""
        assert acked(AckPacer(3, ACK_INTERVAL_S, T0), [T0 + 0.01 * i for i in range(1, 11)]) == [3, 6, 9]

    def test_interval_bounds_the_wait_at_1_hz(self) -> None:
        """At 1 Hz with a large ack_every, an ack goes out every 5 s: the cost of acks drops fivefold."""
        times = [T0 + i for i in range(1, 21)]
        assert acked(AckPacer(1800, 5.0, T0), times) == [5, 10, 15, 20]

    def test_a_slow_agent_is_acked_every_time(self) -> None:
        """An agent sampling every 60 s is never kept waiting for an ack."""
        assert acked(AckPacer(1800, 5.0, T0), [T0 + 60.0 * i for i in range(1, 4)]) == [1, 2, 3]

    @pytest.mark.parametrize("every", [0, -5])
    def test_nonsense_ack_every_means_every_heartbeat(self, every: int) -> None:
        """The schema refuses ack_every < 1; the pacer still never waits forever if handed one."""
        assert acked(AckPacer(every, 5.0, T0), [T0 + 0.1, T0 + 0.2]) == [1, 2]


def fast_config() -> CollectorConfig:
    """The collector of the other integration tests, with their short timeouts."""
    settings: dict[str, Any] = dict(FAST)
    return CollectorConfig(**settings)


def paced_hello(ack_every: int) -> Hello:
    """A hello asking to be acked every ``ack_every`` heartbeats."""
    return Hello(
        node_id="node-a",
        agent_instance_id="inst-1",
        interval_s=1.0,
        sent_at=1_700_000_000.0,
        ack_every=ack_every,
        facts=facts(),
    )


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
        """ack_every=4: acks for seq 4 and 8 only; once 5 s pass on the collector's clock the next one is acked."""
        clock = FakeClock(T0)
        client = await aiohttp_client(create_app(fast_config(), clock=clock))
        ws, ack = await connect_agent(client, paced_hello(4))
        assert ack.seq == 0  # the hello is acked at once, whatever ack_every says
        for seq in range(1, 10):
            await ws.send_bytes(encode(heartbeat(seq)))
        assert await acks_within(ws, 0.5) == [4, 8]
        # Every heartbeat was applied, acked or not: the ack is only about what the agent may forget.
        resp = await client.get("/api/v1/nodes/node-a")
        assert (await resp.json())["history"]["seq"] == list(range(1, 10))
        clock.advance(ACK_INTERVAL_S)
        await ws.send_bytes(encode(heartbeat(10)))
        assert await acks_within(ws, 0.5) == [10]  # cumulative: covers seq 9 as well
        await ws.close()

    async def test_hello_without_ack_every_gets_an_ack_per_heartbeat(self, aiohttp_client: Any) -> None:
        """Agents that predate ack_every keep the old contract: every heartbeat is acked."""
        client = await aiohttp_client(create_app(fast_config(), clock=FakeClock(T0)))
        ws, _ = await connect_agent(client, hello())
        for seq in range(1, 6):
            await ws.send_bytes(encode(heartbeat(seq)))
        assert await acks_within(ws, 0.5) == [1, 2, 3, 4, 5]
        await ws.close()

    async def test_reconnect_hello_acks_what_the_pacer_held_back(self, aiohttp_client: Any) -> None:
        """Samples left unacked when a connection ends are acked by the next hello: the agent never resends them."""
        client = await aiohttp_client(create_app(fast_config(), clock=FakeClock(T0)))
        ws, _ = await connect_agent(client, paced_hello(100))
        for seq in range(1, 4):
            await ws.send_bytes(encode(heartbeat(seq)))
        assert await acks_within(ws, 0.3) == []
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        ws2, ack = await connect_agent(client, paced_hello(100))
        assert ack.seq == 3
        await ws2.close()
