"""The fan-out's lag and cut counters are in /metrics, equal to /api/v1/health's, against a real collector.

A viewer that upgrades and then never reads (a raw socket with a 4 KiB receive buffer) first lags,
then is cut with 4429, while real agents beat. Health's ``fanout`` block counted both; /metrics
showed neither before ``nodewatch_collector_fanout_*`` (docs/protocol.md 8.1, 8.3).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.fanout import FanoutLimits
from shared.codec import encode
from tests.support.collector import connect_agent, fast_config
from tests.support.messages import heartbeat, hello

AGENTS = 20
WAIT_S = 60.0  # generous on 2 busy cores; a passing test waits a few seconds
# Small bounds so that a few hundred KiB of updates make the silent viewer lag, then be cut.
LIMITS = FanoutLimits(max_unsent_bytes=256 * 1024, lag_bytes=32 * 1024)
# health's fanout key -> the /metrics sample that must show the same value.
SAME_AS_HEALTH = {
    "lagged": "nodewatch_collector_fanout_lagged_total",
    "coalesced_updates": "nodewatch_collector_fanout_coalesced_updates_total",
    "rejoined": "nodewatch_collector_fanout_rejoined_total",
    "cut_unsent_bytes": "nodewatch_collector_fanout_cut_unsent_total",
    "refused_full": "nodewatch_collector_fanout_refused_full_total",
    "subscribers_lagging": "nodewatch_collector_fanout_subscribers_lagging",
    "max_subscribers": "nodewatch_collector_fanout_max_subscribers",
    "unsent_bytes_max": "nodewatch_collector_fanout_max_unsent_bytes",
    "flushes": "nodewatch_collector_fanout_flushes_total",
    "frames_packed": "nodewatch_collector_fanout_frames_packed_total",
    "frames_queued": "nodewatch_collector_fanout_frames_queued_total",
    "snapshot_entries_packed": "nodewatch_collector_fanout_snapshot_entries_packed_total",
}


def roomy_frame(seq: int) -> bytes:
    """A legal heartbeat of ~2 KiB (16 named mounts), packed: a few rounds of them fill a socket fast."""
    names = [f"/{'m' * 100}{i:02d}" for i in range(16)]
    return encode(heartbeat(seq, disks={name: [100, 50] for name in names}, disks_read_only=names))


async def silent_viewer(port: int) -> socket.socket:
    """A websocket subscriber that never reads a byte after its upgrade request (RFC 6455 4.1 handshake)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /api/v1/subscribe HTTP/1.1\r\nHost: collector\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    return sock


def samples(text: str) -> dict[str, float]:
    """Every sample line of an exposition, by its name and labels."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\S+) (\S+)$", text, re.MULTILINE) if not m[1].startswith("#")}


class TestFanoutMetrics:
    async def test_a_silent_viewer_lags_then_is_cut_and_metrics_say_what_health_says(self, aiohttp_client: Any) -> None:
        """A viewer that never reads lags, then is cut 4429; /metrics shows the same lag and cut counts as health."""
        client: TestClient[Any, Any] = await aiohttp_client(create_app(fast_config(), fanout_limits=LIMITS))
        async with aiohttp.ClientSession(client.make_url(""), connector=aiohttp.TCPConnector(limit=0)) as fleet:
            agents = [(await connect_agent(fleet, hello(f"node-{i:02d}", f"inst-{i}")))[0] for i in range(AGENTS)]
            assert client.port is not None
            viewer = await silent_viewer(client.port)
            fanout: dict[str, int] = {}
            seq = 0
            async with asyncio.timeout(WAIT_S):
                while fanout.get("cut_unsent_bytes", 0) < 1:
                    seq += 1
                    frame = roomy_frame(seq)
                    for ws in agents:
                        await ws.send_bytes(frame)
                    for ws in agents:
                        await ws.receive()  # its ack
                    fanout = (await (await client.get("/api/v1/health")).json())["fanout"]
            for ws in agents:
                await ws.close()
        viewer.close()
        assert fanout["lagged"] >= 1  # it lagged before it was cut
        async with asyncio.timeout(WAIT_S):  # once no viewer is left, no counter moves: health and metrics agree
            while (health_body := await (await client.get("/api/v1/health")).json())["subscribers"]:  # noqa: ASYNC110 - polls real I/O
                await asyncio.sleep(0.05)
        health = health_body["fanout"]
        exposed = samples(await (await client.get("/metrics")).text())
        assert {key: exposed.get(name) for key, name in SAME_AS_HEALTH.items()} == {
            key: float(health[key]) for key in SAME_AS_HEALTH
        }
        assert (
            exposed['nodewatch_collector_protocol_errors_total{endpoint="subscribe",reason="subscriber_too_slow"}'] >= 1
        )
