"""The real collector app (``create_app``) on loopback in its own thread, behind a relay that can cut viewers.

Qt tests run Qt's event loop on the main thread, so the collector gets a thread and a loop of
its own. It is started with small snapshot parts (``PartLimits``), so a handful of nodes makes
a snapshot of several parts (docs/protocol.md 4.2.1). Viewers connect through a TCP relay whose
``cut()`` drops every connection without a close frame, as a network blip does: the viewer
reconnects to the same collector, which kept its nodes. Not here: agents
(``tests.support.swarm.AgentSwarm``), subprocess collectors (``tests.support.swarm.CollectorProcess``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from collector.app import create_app
from collector.fanout import FanoutLimits
from collector.snapshot import PartLimits
from tests.support.collector import fast_config

T = TypeVar("T")
_CALL_TIMEOUT_S = 10.0
_CHUNK_BYTES = 65536


class PartsCollector:
    """``create_app`` with at most ``part_nodes`` nodes a snapshot part, and a relay in front of its port."""

    def __init__(self, part_nodes: int) -> None:
        self._limits = FanoutLimits(snapshot_parts=PartLimits(max_nodes=part_nodes))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-parts-collector", daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._relay: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.collector_url = ""  # straight to the collector: for agents
        self.url = ""  # through the relay: for viewers

    def start(self) -> None:
        """Start the collector and the relay on loopback ports."""
        self._call(self._start())

    def cut(self) -> None:
        """Drop every relayed connection at once, without a close frame (the viewer sees 1006)."""
        self._call(self._cut())

    def close(self) -> None:
        """Stop the relay, the collector and the thread."""
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT_S)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CALL_TIMEOUT_S)

    async def _start(self) -> None:
        self._runner = web.AppRunner(create_app(fast_config(), fanout_limits=self._limits), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.collector_url = f"http://127.0.0.1:{port}"
        self._relay = await asyncio.start_server(lambda r, w: self._serve(r, w, port), "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._relay.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        self._links |= {writer, upstream_writer}
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(_pump(reader, upstream_writer))
                tasks.create_task(_pump(upstream_reader, writer))
        finally:
            for end in (writer, upstream_writer):
                self._links.discard(end)
                end.transport.abort()

    async def _cut(self) -> None:
        for end in list(self._links):
            end.transport.abort()

    async def _stop(self) -> None:
        await self._cut()
        if self._relay is not None:
            self._relay.close()
        if self._runner is not None:
            await self._runner.cleanup()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy ``source`` to ``sink`` until either end goes."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(_CHUNK_BYTES):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()
