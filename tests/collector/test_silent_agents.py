"""The collector does not ping agents: a connection whose node went offline is dropped instead."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import WSMsgType

from collector.app import RUNTIME_KEY, CollectorRuntime, create_app
from collector.config import CollectorConfig
from tests.collector.conftest import FAST
from tests.collector.helpers import FakeClock, connect_agent, heartbeat, hello, send_heartbeat

T0 = 1000.0
OFFLINE_AFTER_S = 10.0  # 10 intervals of 1 s (docs/protocol.md, liveness)


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


async def test_silent_agent_is_dropped_when_its_node_goes_offline(aiohttp_client: Any) -> None:
    """An agent that stops sending on an open socket is cut off at offline; a chatty one keeps its connection."""
    clock = FakeClock(T0)
    settings: dict[str, Any] = dict(FAST)
    client = await aiohttp_client(create_app(CollectorConfig(**settings), clock=clock))
    runtime: CollectorRuntime = client.server.app[RUNTIME_KEY]
    silent, _ = await connect_agent(client, hello("silent"))
    chatty, _ = await connect_agent(client, hello("chatty", "inst-2"))
    await send_heartbeat(silent, heartbeat(1))
    await send_heartbeat(chatty, heartbeat(1))

    clock.advance(5.0)  # stale, not yet offline: nobody is dropped
    await send_heartbeat(chatty, heartbeat(2))
    runtime.poke_liveness()
    assert not await wait_closed(silent, 0.3)
    assert await state_of(client, "silent") == "stale"

    clock.advance(OFFLINE_AFTER_S)
    await send_heartbeat(chatty, heartbeat(3))  # applied (acked) before liveness looks
    runtime.poke_liveness()
    assert await wait_closed(silent, 2.0)
    body = await (await client.get("/api/v1/nodes/silent")).json()
    assert body["status"]["state"] == "offline"
    assert body["status"]["connected"] is False
    assert await state_of(client, "chatty") == "online"
    assert not chatty.closed
    assert (await send_heartbeat(chatty, heartbeat(4))).seq == 4
    await chatty.close()
