"""Issue 13, finding 6: the real viewer shows a fleet whose snapshot is bigger than its frame limit.

A real collector process (the CLI), real websocket agents with maximal legal heartbeats in a
thread, and the real viewer window offscreen. The snapshot reaches the viewer in parts
(docs/protocol.md 4.2.1), each far under the viewer's limit; before, it was one frame the
viewer refused, and the window stayed empty.
"""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import pytest
from pytestqt.qtbot import QtBot

from shared.codec import encode
from tests.support.messages import heartbeat, hello
from tests.support.swarm import CollectorProcess
from viewer.backoff import Backoff
from viewer.link import CollectorLink, LinkConfig, Phase
from viewer.window import MainWindow

pytestmark = pytest.mark.slow
NODES = 40
WAIT_MS = 20_000
VIEWER_FRAME_LIMIT = 1024 * 1024  # the fleet's snapshot is ~2 MiB


def fat_frame(seq: int) -> bytes:
    """A legal heartbeat near the 64 KiB frame limit: 1,024 cores and 64 long-named mounts."""
    names = [f"/{'m' * 200}{i:02d}" for i in range(64)]
    return encode(
        heartbeat(
            seq,
            cpu_per_core_percent=[12.5] * 1024,
            disks={name: [100, 50] for name in names},
            disk_inodes={name: [1000, 10] for name in names},
            disks_read_only=names,
        )
    )


class FatFleet:
    """``NODES`` agents in their own thread and loop: each sends a hello and one maximal heartbeat, then idles."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/api/v1/ingest"
        self.acked = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> FatFleet:
        self._thread.start()
        assert self.acked.wait(30), "the fleet was not acked"
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            sockets = []
            for index in range(NODES):
                ws = await session.ws_connect(self.url)
                await ws.send_bytes(encode(hello(f"fat-{index:03d}", f"inst-{index}", interval_s=60.0)))
                await ws.receive(timeout=10)  # the hello's ack
                await ws.send_bytes(fat_frame(1))
                await ws.receive(timeout=10)  # the heartbeat's ack
                sockets.append(ws)
            self.acked.set()
            await self._stop.wait()
            for ws in sockets:
                await ws.close()


class TestViewerGetsAPartedSnapshot:
    """The viewer's frame limit no longer bounds the fleet it can show."""

    def test_every_node_shows_though_the_snapshot_is_over_the_frame_limit(self, qtbot: QtBot) -> None:
        """40 maximal nodes (~2 MiB of snapshot) all show in a viewer that refuses frames over 1 MiB."""
        collector = CollectorProcess()
        collector.start()
        try:
            with FatFleet(collector.url):
                config = LinkConfig(collector_url=collector.url, max_frame_bytes=VIEWER_FRAME_LIMIT)
                backoff = Backoff(initial_s=0.05, max_s=0.2, uniform=lambda _low, _high: 0.0)
                win = MainWindow(CollectorLink(config, backoff=backoff))
                qtbot.addWidget(win)
                win.show()
                win.link.start()
                try:
                    qtbot.waitUntil(lambda: win.model.rowCount() == NODES, timeout=WAIT_MS)
                    assert win.link.state.phase is Phase.CONNECTED
                    assert win.model.row_of(f"fat-{NODES - 1:03d}") is not None  # in the last part
                finally:
                    assert win.link.stop()
        finally:
            collector.stop()
