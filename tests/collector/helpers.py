"""Shared builders for collector tests: wire messages, a fake clock and real websocket client steps."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack, Error, Heartbeat, Hello, Message, NodeFacts

WALL_T0 = 1_700_000_000.0
RECEIVE_TIMEOUT_S = 3.0


@dataclass
class FakeClock:
    """A clock that moves only when a test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds


def facts(hostname: str = "host-a") -> NodeFacts:
    """Static facts of a plausible Linux node."""
    return NodeFacts(
        hostname=hostname,
        os="Linux",
        os_release="6.1.0",
        platform="Linux-6.1.0-x86_64",
        arch="x86_64",
        cpu_count_logical=4,
        memory_total_bytes=8 * 2**30,
        agent_version="0.1.0",
        python_version="3.11.7",
    )


def hello(
    node_id: str = "node-a",
    instance: str = "inst-1",
    *,
    interval_s: float = 1.0,
    sent_at: float = WALL_T0,
    dropped: int = 0,
    hostname: str = "host-a",
) -> Hello:
    """A hello from ``node_id``'s agent ``instance``."""
    return Hello(
        node_id=node_id,
        agent_instance_id=instance,
        interval_s=interval_s,
        sent_at=sent_at,
        dropped_samples=dropped,
        facts=facts(hostname),
    )


def heartbeat(seq: int, *, sampled_at: float | None = None, cpu: float = 10.0, **extra: Any) -> Heartbeat:
    """A heartbeat with ``seq``, sampled one second apart by default."""
    return Heartbeat(
        seq=seq,
        sampled_at=WALL_T0 + seq if sampled_at is None else sampled_at,
        cpu_percent=cpu,
        mem_percent=50.0,
        load_avg=[0.5, 0.4, 0.3],
        net_rx_bytes_per_s=100.0,
        **extra,
    )


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
