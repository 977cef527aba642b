"""Real parts for end-to-end tests driven from a Qt test: a collector subprocess and websocket "agents" in a thread.

``CollectorProcess`` runs ``python -m nodewatch collector`` (the real CLI) on 127.0.0.1 and can
be stopped (SIGTERM) and restarted on the same port; it keeps its store (issue 12) in
memory unless given a ``data_dir``. ``AgentSwarm`` speaks the ingest
protocol (Hello, then Heartbeats) over real websockets from its own asyncio loop, so the
Qt event loop of the test keeps running on the main thread. Neither is the agent package:
tests decide exactly which heartbeat is sent when. For subprocess collectors
driven from asyncio tests, see ``tests.support.processes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bench._procs import store_flags
from shared.codec import INGEST_LIMITS, decode, encode
from shared.messages import Ack
from tests.support.messages import GIB, heartbeat, hello

T = TypeVar("T")
_STARTUP_TIMEOUT_S = 20.0
_CALL_TIMEOUT_S = 10.0
_URL_RE = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


class CollectorProcess:
    """The real collector CLI in a subprocess on loopback."""

    def __init__(self, env: Mapping[str, str] | None = None, data_dir: Path | None = None) -> None:
        self.env = {**os.environ, **(env or {})}
        self.data_dir = data_dir
        self.port = 0
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start (on the previous port after a stop) and return the http URL it prints."""
        command = [sys.executable, "-m", "nodewatch", "collector", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--log-level", "WARNING", *store_flags(self.data_dir)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=deadline - time.monotonic()):
                    break
                line = self._process.stdout.readline()
                if not line:
                    break
                match = _URL_RE.search(line)
                if match:
                    self.url, self.port = match.group(1), int(match.group(2))
                    return self.url
        self.stop()
        raise RuntimeError("expected the collector to print its URL, got nothing in time")

    def stop(self) -> str:
        """SIGTERM, wait, and return what the collector wrote to stderr."""
        process, self._process = self._process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _out, err = process.communicate(timeout=5)
        return err

    def get(self, path: str, token: str | None = None) -> str:
        """GET ``path`` from the collector (blocking; for assertions only)."""
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(response.read().decode())


class AgentSwarm:
    """Fake agents over real ingest websockets, driven from a background asyncio loop."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/api/v1/ingest"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-agent-swarm", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None
        self._sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self._seq: dict[str, int] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self.acks: dict[str, int] = {}

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CALL_TIMEOUT_S)

    def connect(self, node_id: str, interval_s: float = 60.0) -> None:
        """Open an ingest websocket for ``node_id`` and send its hello (a long interval keeps it online)."""
        self._call(self._connect(node_id, interval_s))

    def beat(self, node_id: str, cpu_percent: float = 10.0, mem_percent: float = 30.0) -> int:
        """Send the next heartbeat of ``node_id``; return its seq."""
        return self._call(self._beat(node_id, cpu_percent, mem_percent))

    def close(self, node_id: str) -> None:
        """Close ``node_id``'s websocket cleanly (1000): the collector marks it offline at once."""
        self._call(self._close(node_id))

    def close_all(self) -> None:
        """Close every agent and stop the loop thread."""
        for node_id in list(self._sockets):
            self._call(self._close(node_id))
        if self._session is not None:
            self._call(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT_S)
        self._loop.close()

    async def _connect(self, node_id: str, interval_s: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        ws = await self._session.ws_connect(self.url, heartbeat=30.0, max_msg_size=INGEST_LIMITS.max_frame_bytes)
        message = hello(
            node_id, f"{node_id}-{time.monotonic_ns()}", interval_s=interval_s, sent_at=time.time(), hostname=node_id
        )
        await ws.send_bytes(encode(message))
        self._sockets[node_id] = ws
        self._seq[node_id] = 0
        self._readers[node_id] = asyncio.create_task(self._read_acks(node_id, ws))

    async def _read_acks(self, node_id: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.BINARY:
                message = decode(frame.data, INGEST_LIMITS)
                if isinstance(message, Ack):
                    self.acks[node_id] = message.seq

    async def _beat(self, node_id: str, cpu_percent: float, mem_percent: float) -> int:
        self._seq[node_id] += 1
        seq = self._seq[node_id]
        sample = heartbeat(
            seq,
            cpu_percent,
            sampled_at=time.time(),
            mem=mem_percent,
            load_avg=[0.42, 0.35, 0.30],
            disks={"/": [200 * GIB, 84 * GIB]},
            net_rx_bytes_per_s=12_345.0,
            net_tx_bytes_per_s=2_048.0,
            uptime_s=3 * 86_400 + 7_200.0,
        )
        await self._sockets[node_id].send_bytes(encode(sample))
        return seq

    async def _close(self, node_id: str) -> None:
        ws = self._sockets.pop(node_id, None)
        if ws is not None:
            await ws.close()
        reader = self._readers.pop(node_id, None)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
