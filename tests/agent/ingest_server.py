"""A minimal but real ingest endpoint for the agent's tests, and a TCP proxy that can stall.

It implements the ingest contract of docs/protocol.md and nothing else:
bearer token checked before the upgrade (401 + JSON body), Hello first,
``Ack(held seq)`` for the hello, a cumulative ``Ack`` after every heartbeat,
duplicates ignored. It records what arrived so tests can assert on it.
It is not the collector (no liveness, no history API).

With ``hostile=script`` its first ``hostile_connections`` connections run the
script after the hello instead (a collector that lies or floods, issue 13),
while a reader records what the agent sends back: heartbeats, pongs and its
close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from agent.runner import Agent
from shared.codec import decode, encode
from shared.errors import CloseCode, ErrorReason
from shared.messages import Ack, Error, Heartbeat, Hello


@dataclass
class HostileLog:
    """What the agent did on one hostile connection."""

    seqs: list[int] = field(default_factory=list)  # heartbeats that arrived
    pongs: int = 0
    close_code: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the agent ended the connection


# A hostile script: what the fake collector does after the hello; it must not read (a reader runs beside it).
Script = Callable[[web.WebSocketResponse, HostileLog], Awaitable[None]]


@dataclass
class IngestLog:
    """What the server saw; survives server restarts so a test can follow one agent across them."""

    hellos: list[Hello] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)  # every heartbeat seq, in arrival order, duplicates included
    sampled_at: list[float] = field(default_factory=list)
    heartbeats: list[Heartbeat] = field(default_factory=list)  # every heartbeat, as it arrived
    close_codes: list[int | None] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)  # agent_instance_id -> highest seq held
    connections: int = 0
    hostile: list[HostileLog] = field(default_factory=list)


class IngestServer:
    """Runs the endpoint on 127.0.0.1; ``stop()`` and ``start(port)`` again simulate a collector restart."""

    def __init__(
        self,
        log: IngestLog | None = None,
        *,
        tokens: frozenset[str] = frozenset(),
        refuse_hello: bool = False,
        mute: bool = False,
        hostile: Script | None = None,
        hostile_connections: int = 1,
    ) -> None:
        self.log = log if log is not None else IngestLog()
        self.tokens = tokens
        self.refuse_hello = refuse_hello
        self.mute = mute  # read everything, never answer: a collector stuck before its first ack
        self.hostile = hostile
        self.hostile_connections = hostile_connections
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/ingest", self._ingest)
        app.on_shutdown.append(self._close_sockets)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self, *, forget: bool = True) -> None:
        """Shut down like a collector does (close 1001); ``forget`` drops what it held, as a restart does."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if forget:
            self.log.held.clear()

    async def _close_sockets(self, _app: web.Application) -> None:
        for ws in list(self._sockets):
            await ws.close(code=CloseCode.GOING_AWAY, message=b"collector shutting down")

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        if self.tokens:
            header = request.headers.get("Authorization", "")
            if header.removeprefix("Bearer ") not in self.tokens:
                return web.json_response({"error": "unauthorized", "detail": "missing or unknown token"}, status=401)
        self.log.connections += 1
        hostile = self.hostile is not None and self.log.connections <= self.hostile_connections
        # A hostile connection counts the agent's pongs, so it answers pings itself.
        ws = web.WebSocketResponse(heartbeat=5.0, max_msg_size=64 * 1024, autoping=not hostile)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._converse(ws, self.hostile if hostile else None)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _converse(self, ws: web.WebSocketResponse, hostile: Script | None) -> None:
        first = await ws.receive(timeout=10.0)
        if first.type != WSMsgType.BINARY:
            return
        hello = decode(first.data)
        assert isinstance(hello, Hello)
        self.log.hellos.append(hello)
        if self.refuse_hello:
            await ws.send_bytes(encode(Error(reason=ErrorReason.SCHEMA, detail="refused by test")))
            await ws.close(code=CloseCode.POLICY_VIOLATION, message=b"schema")
            return
        instance = hello.agent_instance_id
        if hostile is not None:
            await self._run_hostile(ws, hostile)
            return
        if self.mute:
            async for _ in ws:
                pass
            return
        await ws.send_bytes(encode(Ack(seq=self.log.held.get(instance, 0))))
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            beat = decode(msg.data)
            assert isinstance(beat, Heartbeat)
            self.log.seqs.append(beat.seq)
            self.log.sampled_at.append(beat.sampled_at)
            self.log.heartbeats.append(beat)
            held = max(self.log.held.get(instance, 0), beat.seq)
            self.log.held[instance] = held
            await ws.send_bytes(encode(Ack(seq=held)))
        self.log.close_codes.append(ws.close_code)

    async def _run_hostile(self, ws: web.WebSocketResponse, script: Script) -> None:
        record = HostileLog()
        self.log.hostile.append(record)
        attack = asyncio.ensure_future(script(ws, record))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.PONG:
                    record.pongs += 1
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    beat = decode(msg.data)
                    assert isinstance(beat, Heartbeat)
                    record.seqs.append(beat.seq)
        finally:
            attack.cancel()
            await asyncio.gather(attack, return_exceptions=True)
            record.close_code = ws.close_code
            record.done.set()


class StallingProxy:
    """A TCP relay in front of the server; ``stall()`` freezes open connections without closing them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._stalled = False
        self._resumed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        """From now on no byte crosses any connection open now; new connections still relay."""
        self._stalled = True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        generation_stalled: Callable[[], bool] = self._stall_check()
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(src, dst, generation_stalled))
            self._tasks.add(task)

    def _stall_check(self) -> Callable[[], bool]:
        # Connections opened before stall() freeze; the ones opened after it relay normally.
        opened_stalled = self._stalled
        return lambda: self._stalled and not opened_stalled

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, stalled: Callable[[], bool]) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if stalled():
                    await asyncio.Event().wait()  # hold the bytes forever, keep the socket open
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(ConnectionError, OSError):
            dst.close()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` every 10 ms for real I/O to happen; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - conditions are plain attributes set by other tasks' I/O
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[Agent]:
    """Run the agent's loop in a thread beside the test's event loop; on exit stop it and require it done within 2 s."""
    thread = threading.Thread(target=agent.run, name="agent-under-test", daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop()
        await asyncio.to_thread(thread.join, 2.0)
        assert not thread.is_alive(), "the agent did not stop within 2 s"
