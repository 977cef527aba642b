"""A small asyncio TCP proxy that injects network faults between an agent and the collector.

Faults, switched at run time by the test:
- ``stall()`` / ``resume()``: no byte moves either way, on open and new
  connections, until resumed; then everything held is delivered;
- ``half_open(side)``: every open connection is reset on one side only and
  left open and silent on the other, as when a NAT or a peer forgets it;
- ``bytes_per_s``: a slow link, each direction paced to that rate;
- ``reset_mid_frame()``: the next agent-to-collector chunk is cut in half,
  then both sides get a TCP reset (SO_LINGER 0);
- ``refuse``: new connections are reset at once.

It understands nothing of websockets. Not a general-purpose proxy: loopback only, for the fault
tests and ``bench/faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

CHUNK_BYTES = 65_536
SLOW_CHUNK_BYTES = 64  # pacing granularity of the slow link


@dataclass(eq=False)
class _Pair:
    """One proxied connection: the agent side and the collector side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    frozen: bool = False  # half-open: this pair forwards nothing ever again


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Listens on 127.0.0.1:port and forwards to ``upstream_port``, with faults on demand."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.bytes_per_s: float | None = None
        self.refuse = False
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._reset_armed = False
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The proxy's base URL, to give the agent instead of the collector's."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and reset every proxied connection."""
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        tasks = [task for pair in self._pairs for task in pair.tasks]
        for pair in list(self._pairs):
            await self._drop(pair, reset=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ---- faults ---------------------------------------------------------------------------------

    def stall(self) -> None:
        """Hold every byte, both ways, on every connection (new ones too)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Deliver what was held and flow again."""
        self._flowing.set()

    def half_open(self, reset_side: str) -> None:
        """Reset ``"client"`` or ``"upstream"`` of every open connection; leave the other side open and silent."""
        for pair in list(self._pairs):
            pair.frozen = True
            _reset(pair.client if reset_side == "client" else pair.upstream)

    def reset_mid_frame(self) -> None:
        """Cut the next agent-to-collector chunk in half, then reset both sides."""
        self._reset_armed = True

    @property
    def open_connections(self) -> int:
        """Connections currently proxied."""
        return len(self._pairs)

    # ---- plumbing -------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refuse:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(writer)
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(pair, reader, up_writer, to_collector=True)),
            asyncio.create_task(self._pump(pair, up_reader, writer, to_collector=False)),
        ]

    async def _pump(
        self, pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_collector: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                await self._flowing.wait()
                if pair.frozen:
                    await asyncio.Event().wait()  # half-open: swallow everything, never close
                if not data:
                    break
                if to_collector and self._reset_armed and len(data) > 4:
                    self._reset_armed = False
                    writer.write(data[: len(data) // 2])
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    await self._drop(pair, reset=True)
                    return
                await self._write(writer, data)
        except (ConnectionError, OSError):
            pass
        finally:
            if not pair.frozen:
                await self._drop(pair, reset=False)

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        rate = self.bytes_per_s
        if rate is None:
            writer.write(data)
            await writer.drain()
            return
        for start in range(0, len(data), SLOW_CHUNK_BYTES):
            chunk = data[start : start + SLOW_CHUNK_BYTES]
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(len(chunk) / rate)

    async def _drop(self, pair: _Pair, *, reset: bool) -> None:
        if pair not in self._pairs:
            return
        self._pairs.discard(pair)
        for writer in (pair.client, pair.upstream):
            if reset:
                _reset(writer)
            else:
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()
        current = asyncio.current_task()
        for task in pair.tasks:
            if task is not current:
                task.cancel()
