"""The collector's timers on an injected clock: liveness drops silent agents, acks go out after silence.

A fake clock comes with a fake ``Scheduler`` (``FakeTimers``) that fires the
timers the collector armed when the test moves the clock; nothing sleeps to
test timing and no hook wakes the collector up.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from collector.app import create_app
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack
from tests.support.clock import FakeClock
from tests.support.collector import connect_agent, fast_config, send_heartbeat
from tests.support.messages import heartbeat, hello

T0 = 1000.0
OFFLINE_AFTER_S = 10.0  # 10 intervals of 1 s (docs/protocol.md, liveness)


class FakeTimer:
    """One armed callback of ``FakeTimers``."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        """Never run it."""
        self.callback = None


class FakeTimers:
    """A ``Scheduler`` on a ``FakeClock``: ``advance()`` moves the clock and runs every timer now due."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        """Arm ``callback`` for clock time ``when``."""
        timer = FakeTimer(callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        return timer

    async def advance(self, seconds: float) -> None:
        """Move the clock, run the callbacks now due in time order, and let the loop act on them."""
        self.clock.advance(seconds)
        while self._heap and self._heap[0][0] <= self.clock.now:
            _, _, timer = heapq.heappop(self._heap)
            if timer.callback is not None:
                timer.callback()
        for _ in range(5):  # a woken task runs in a later turn of the loop
            await asyncio.sleep(0)


async def wait_closed(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    """True if the collector ends the connection within ``seconds``."""
    try:
        msg = await ws.receive(timeout=seconds)
    except TimeoutError:
        return False
    return msg.type in {WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR}


async def state_of(client: Any, node_id: str) -> str:
    """The node's liveness state as the JSON API shows it."""
    resp = await client.get(f"/api/v1/nodes/{node_id}")
    state: str = (await resp.json())["status"]["state"]
    return state


async def wait_for_seq(client: Any, node_id: str, seq: int) -> None:
    """Poll the JSON API until the collector holds ``seq`` for ``node_id`` (real I/O, a bounded wait)."""
    async with asyncio.timeout(3.0):
        while (await (await client.get(f"/api/v1/nodes/{node_id}")).json())["status"]["last_seq"] < seq:  # noqa: ASYNC110 - polls real I/O
            await asyncio.sleep(0.01)


class TestLiveness:
    async def test_silent_agent_is_dropped_when_its_node_goes_offline(self, aiohttp_client: Any) -> None:
        """An agent that stops sending on an open socket is cut off at offline; a chatty one keeps its connection."""
        clock = FakeClock(T0)
        timers = FakeTimers(clock)
        client = await aiohttp_client(create_app(fast_config(), clock=clock, scheduler=timers))
        silent, _ = await connect_agent(client, hello("silent"))
        chatty, _ = await connect_agent(client, hello("chatty", "inst-2"))
        await send_heartbeat(silent, heartbeat(1))
        await send_heartbeat(chatty, heartbeat(1))

        await timers.advance(5.0)  # stale, not yet offline: nobody is dropped
        await send_heartbeat(chatty, heartbeat(2))
        assert not await wait_closed(silent, 0.3)
        assert await state_of(client, "silent") == "stale"

        clock.advance(OFFLINE_AFTER_S)
        await send_heartbeat(chatty, heartbeat(3))  # applied (acked) before liveness looks
        await timers.advance(0.0)
        assert await wait_closed(silent, 2.0)
        body = await (await client.get("/api/v1/nodes/silent")).json()
        assert body["status"]["state"] == "offline"
        assert body["status"]["connected"] is False
        assert await state_of(client, "chatty") == "online"
        assert not chatty.closed
        assert (await send_heartbeat(chatty, heartbeat(4))).seq == 4
        await chatty.close()

    async def test_an_offline_node_is_forgotten_on_the_fake_clock(self, aiohttp_client: Any) -> None:
        """A day later on the collector's clock an offline node is gone: the liveness task sleeps on that clock."""
        clock = FakeClock(T0)
        timers = FakeTimers(clock)
        client = await aiohttp_client(create_app(fast_config(), clock=clock, scheduler=timers))
        ws, _ = await connect_agent(client, hello())
        await ws.close()
        await timers.advance(0.0)
        assert await state_of(client, "node-a") == "offline"
        await timers.advance(24 * 3600.0 + 1.0)
        assert (await client.get("/api/v1/nodes/node-a")).status == 404


class TestAckTimer:
    async def test_one_heartbeat_then_silence_is_acked_after_the_interval(self, aiohttp_client: Any) -> None:
        """An agent that sends one heartbeat and goes quiet still gets its ack, ack_interval_s later."""
        clock = FakeClock(T0)
        timers = FakeTimers(clock)
        client = await aiohttp_client(create_app(fast_config(), clock=clock, scheduler=timers))
        ws, _ = await connect_agent(client, hello(ack_every=100))
        await ws.send_bytes(encode(heartbeat(1)))
        await wait_for_seq(client, "node-a", 1)  # received at T0, before the clock moves
        await timers.advance(4.9)
        try:
            early = await ws.receive(timeout=0.2)
        except TimeoutError:
            early = None
        assert early is None, f"expected no ack before 5 s, got {early!r}"
        await timers.advance(0.1)
        msg = await ws.receive(timeout=3.0)
        ack = decode(msg.data, COLLECTOR_LIMITS)
        assert isinstance(ack, Ack)
        assert ack.seq == 1
        await ws.close()

    async def test_the_real_clock_acks_a_lone_heartbeat_too(self, aiohttp_client: Any) -> None:
        """With the default scheduler (the event loop) a lone heartbeat is acked ack_interval_s after it."""
        client = await aiohttp_client(create_app(fast_config(ack_interval_s=0.2)))
        ws, _ = await connect_agent(client, hello(ack_every=100))
        await ws.send_bytes(encode(heartbeat(1)))
        msg = await ws.receive(timeout=3.0)
        ack = decode(msg.data, COLLECTOR_LIMITS)
        assert isinstance(ack, Ack)
        assert ack.seq == 1
        await ws.close()
