"""A real collector app on a loopback port, and the agent's side of the ingest handshake, step by step.

``make_client`` is a pytest fixture (import it into a conftest to use it)
that starts ``create_app`` with ``FAST`` timeouts behind aiohttp's test
client. ``connect_agent``, ``send_heartbeat`` and ``expect_rejection`` speak
the real protocol over a real websocket. Not here: subprocess collectors
(``tests.support.processes``) or message builders (``tests.support.messages``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.cache import NodeCache
from collector.config import CollectorConfig
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack, Error, Heartbeat, Hello, Message
from tests.support.messages import hello

RECEIVE_TIMEOUT_S = 3.0  # generous on 2 busy cores; a passing test never waits this long

# Short timeouts: tests check behaviour, never wall-clock speed, but must not wait the real 10 s hello timeout.
FAST: Mapping[str, float] = MappingProxyType(
    {
        "hello_timeout_s": 1.5,  # 0.3 s flaked a 50-connection burst on a loaded machine (CI)
        "flush_interval_s": 0.02,
        "send_timeout_s": 0.5,
        "close_timeout_s": 0.5,
        "ws_heartbeat_s": 5.0,
    }
)

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def fast_config(**overrides: Any) -> CollectorConfig:
    """A collector config with ``FAST`` timeouts plus ``overrides``."""
    return CollectorConfig(**{**FAST, **overrides})


@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    """Start a collector with FAST settings plus ``overrides`` and return a client for it."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(create_app(fast_config(**overrides)))
        return client

    return make


async def receive_message(ws: aiohttp.ClientWebSocketResponse) -> Message:
    """The next binary frame from the collector, decoded; fails the test on anything else."""
    msg = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
    assert msg.type is WSMsgType.BINARY, f"expected a binary frame, got {msg.type!r} {msg.data!r} {msg.extra!r}"
    return decode(msg.data, COLLECTOR_LIMITS)


async def connect_agent(
    client: Any, message: Hello, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientWebSocketResponse, Ack]:
    """Open /api/v1/ingest, send ``message`` and return the socket with the collector's Ack."""
    ws = await client.ws_connect("/api/v1/ingest", headers=headers)
    await ws.send_bytes(encode(message))
    ack = await receive_message(ws)
    assert isinstance(ack, Ack), f"expected an ack, got {ack!r}"
    return ws, ack


async def send_heartbeat(ws: aiohttp.ClientWebSocketResponse, message: Heartbeat) -> Ack:
    """Send one heartbeat and return the Ack that answers it."""
    await ws.send_bytes(encode(message))
    ack = await receive_message(ws)
    assert isinstance(ack, Ack), f"expected an ack, got {ack!r}"
    return ack


async def expect_rejection(ws: aiohttp.ClientWebSocketResponse) -> tuple[Error | None, int | None, str]:
    """Read until the collector closes: return its Error frame (if any), close code and close reason."""
    error: Error | None = None
    async with asyncio.timeout(RECEIVE_TIMEOUT_S * 2):
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.BINARY:
                message = decode(msg.data, COLLECTOR_LIMITS)
                if isinstance(message, Error):
                    error = message
                continue
            if msg.type is WSMsgType.TEXT:
                continue
            if msg.type is WSMsgType.CLOSE:
                return error, int(msg.data), str(msg.extra or "")
            return error, ws.close_code, ""


def small_cache(*node_ids: str) -> NodeCache:
    """A node cache holding ``node_ids``, each after its hello (no sample yet)."""
    cache = NodeCache(forget_after_s=3600, max_nodes=10, history_window_s=900, history_max_points=900)
    for index, node_id in enumerate(node_ids):
        cache.hello(hello(node_id, f"inst-{index}"), conn=index + 1, now=1.0, wall=1_700_000_000.0)
    return cache
