"""The ingest fast path (collector.ingest_tap): frames taken in the transport's callback keep their order and rules.

Each burst is written to the socket in one write, so aiohttp parses it in one callback and
the fast path meets several frames at once; however the kernel splits the write, the collector
must answer exactly as if it read the frames one by one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from collector.app import create_app
from collector.ingest_tap import Tap
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.errors import CloseCode
from shared.messages import Ack, Message
from tests.support.collector import RECEIVE_TIMEOUT_S, expect_rejection, fast_config, receive_message
from tests.support.messages import heartbeat, hello

_BINARY_OPCODE = 0x2
_PING_OPCODE = 0x9


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 5.2) with an all-zero mask key, so the payload goes as it is."""
    size = len(payload)
    length = bytes((0x80 | size,)) if size < 126 else bytes((0x80 | 126,)) + size.to_bytes(2, "big")
    return bytes((0x80 | opcode,)) + length + b"\0\0\0\0" + payload


async def agent(client: Any, **hello_fields: Any) -> aiohttp.ClientWebSocketResponse:
    """An agent past its hello's ack, with autoping off so a pong reaches the test."""
    ws: aiohttp.ClientWebSocketResponse = await client.ws_connect("/api/v1/ingest", autoping=False)
    await ws.send_bytes(encode(hello(newest_seq=0, **hello_fields)))
    assert isinstance(await receive_message(ws), Ack)
    return ws


def write_raw(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
    """Write ``data`` to the agent's socket in one call (frames built by ``client_frame``)."""
    transport = ws._response.connection.transport  # type: ignore[union-attr]
    assert transport is not None
    transport.write(data)


class TestFastPathOrder:
    async def test_a_burst_with_a_ping_inside_is_answered_in_order(self, aiohttp_client: Any) -> None:
        """Two heartbeats, a ping and a third heartbeat in one write get ack 1, ack 2, the pong, ack 3, in order."""
        client = await aiohttp_client(create_app(fast_config()))
        ws = await agent(client, ack_every=1)
        burst = [client_frame(_BINARY_OPCODE, encode(heartbeat(seq))) for seq in (1, 2)]
        burst.append(client_frame(_PING_OPCODE, b"are-you-there"))
        burst.append(client_frame(_BINARY_OPCODE, encode(heartbeat(3))))
        write_raw(ws, b"".join(burst))
        seen: list[object] = []
        for _ in range(4):
            msg = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
            if msg.type is WSMsgType.PONG:
                seen.append(("pong", msg.data))
                continue
            assert msg.type is WSMsgType.BINARY, (msg.type, msg.data)
            answer: Message = decode(msg.data, COLLECTOR_LIMITS)
            assert isinstance(answer, Ack)
            seen.append(answer.seq)
        assert seen == [1, 2, ("pong", b"are-you-there"), 3]
        await ws.close()

    async def test_a_refused_heartbeat_ends_the_burst_and_nothing_after_it_is_applied(
        self, aiohttp_client: Any
    ) -> None:
        """A seq out of range in the middle of a burst closes 1008; the heartbeat written after it never counts."""
        client = await aiohttp_client(create_app(fast_config()))
        ws = await agent(client, ack_every=10)
        burst = (
            client_frame(_BINARY_OPCODE, encode(heartbeat(1)))
            + client_frame(_BINARY_OPCODE, encode(heartbeat(10**9)))
            + client_frame(_BINARY_OPCODE, encode(heartbeat(2)))
        )
        write_raw(ws, burst)
        error, code, _ = await expect_rejection(ws)
        assert code == CloseCode.POLICY_VIOLATION
        assert error is not None
        assert error.reason == "seq_out_of_range"
        node = await (await client.get("/api/v1/nodes/node-a")).json()
        assert node["status"]["last_seq"] == 1
        health = await (await client.get("/api/v1/health")).json()
        assert health["heartbeats_received"] == 1


class _Recorder(asyncio.Protocol):
    """A plain protocol that keeps its transport and what it is given."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.data = b""
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


async def _until(condition: Any) -> None:
    """Wait until ``condition()`` holds, for up to a few seconds."""
    for _ in range(int(RECEIVE_TIMEOUT_S * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("expected the condition within the timeout, got it still false")


class TestTap:
    async def test_the_tap_passes_everything_on_and_calls_back_after_each_chunk(self) -> None:
        """A tapped socket's protocol gets every byte and its close, the callback after each; remove() undoes it."""
        recorders: list[_Recorder] = []

        def factory() -> _Recorder:
            recorders.append(_Recorder())
            return recorders[-1]

        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        await _until(lambda: recorders and recorders[0].transport is not None)
        recorder = recorders[0]
        assert recorder.transport is not None
        seen: list[bytes] = []
        tap = Tap.install(recorder.transport, lambda: seen.append(recorder.data))
        assert tap is not None
        assert recorder.transport.get_protocol() is tap
        writer.write(b"first")
        await _until(lambda: seen)
        assert seen == [b"first"]  # called after the protocol had the chunk
        tap.remove()
        assert recorder.transport.get_protocol() is recorder
        tap = Tap.install(recorder.transport, lambda: seen.append(b"lost" if recorder.lost else b"data"))
        writer.close()
        await _until(lambda: recorder.lost)
        assert seen[-1] == b"lost"
        server.close()
        await server.wait_closed()
