"""Connection floods and the health probe that watches them, shared by ``bench/faults.py`` and the flood tests.

``storm()`` opens many TCP connections at once and drops them rudely;
``HealthProbe`` polls ``/api/v1/health`` meanwhile and keeps every answer and
failure. Not here: judging the result (the caller asserts or prints).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

import aiohttp

from bench._procs import get_json

PROBE_PAUSE_S = 0.05  # ~20 probes a second: enough to catch a stall of a fraction of a second


@dataclass
class HealthProbe:
    """Polls /api/v1/health while a flood runs and keeps every answer or failure."""

    base: str
    answered: int = 0
    failures: list[str] = field(default_factory=list)

    async def run(self) -> None:
        """Poll until cancelled; a request may take up to 10 s, past that it counts as a failure."""
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    status, _ = await get_json(session, f"{self.base}/api/v1/health")
                    if status == 200:
                        self.answered += 1
                    else:
                        self.failures.append(f"HTTP {status}")
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.failures.append(repr(exc))
                await asyncio.sleep(PROBE_PAUSE_S)


async def storm(port: int, count: int) -> int:
    """Open ``count`` TCP connections at once, a third sending half a request; drop them (half with RST)."""
    request = b"GET /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"

    async def one(index: int) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        if index % 3 == 0:
            writer.write(request)
        if index % 2 == 0:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return True

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return sum(results)
