"""Admission control at accept time: idle and unauthenticated sockets are bounded, and past a limit ingest gets a 503.

Why here and not in the ingest handler: aiohttp gives every accepted socket a
request handler, an HTTP parser and a task before any handler of ours runs.
With 8,000 refused agents reconnecting every second or two, those piled up by
the thousand faster than one core could refuse them, and a collector under a
256 MiB address-space limit died of MemoryError. So once ``limit``
connections count, a new connection first gets a tiny protocol that reads
its request line: an ingest upgrade gets a pre-encoded HTTP 503 (JSON body)
and is closed, costing no parser, task or msgpack; anything else (health,
metrics, the JSON API, subscribers) is handed to aiohttp unchanged, so the
collector stays observable while it sheds agents.

With a ``PeerGate`` every new connection is first a ``collector.head_reader.HeadReader``
(per-address slots, the header deadline, the refusal cooldown's 429), then aiohttp's
handler behind ``collector.parked_meter.MeteredProtocol`` (the parked-bytes budget). What
counts toward ``limit`` is ``count()``: the CLI counts upgraded, authenticated ingest
websockets, so idle sockets no longer crowd agents out.

Not here: the node cap itself (``NodeCache``, close 4503 after the hello),
auth (``collector.http_api``), the encoded answers (``collector.refusals``) and the
per-address arithmetic (``collector.trust.nodetable.PeerGate``). The private aiohttp
names it needs are borrowed through ``collector.aiohttp_private``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from aiohttp import web

from collector import aiohttp_private
from collector.head_reader import INGEST_REQUEST_LINE, HeadReader
from collector.parked_meter import MeteredProtocol, parked_meter
from collector.refusals import busy_response, penalty_response
from collector.trust.nodetable import PeerGate
from collector.trust.parked import ParkedBytes, ParkedConn
from collector.trust.penalty import IngestPenalty

# collector.ingest imports these two from here; they live in collector.parked_meter and collector.refusals.
__all__ = ["DEFAULT_HEADER_TIMEOUT_S", "AdmissionSite", "parked_meter", "penalty_response"]

# nginx's client_header_timeout is 60 s; an agent sends its head in one packet right after connecting.
DEFAULT_HEADER_TIMEOUT_S = 10.0


class _Sniffer(asyncio.Protocol):
    """Reads just the request line: ingest gets the canned 503, anything else goes to aiohttp."""

    def __init__(self, server: web.Server, response: bytes, on_refused: Callable[[], None]) -> None:
        self._server = server
        self._response = response
        self._on_refused = on_refused
        self._transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        head = self._head + data
        if head.startswith(INGEST_REQUEST_LINE):
            transport.write(self._response)
            transport.close()
            self._on_refused()
        elif len(head) >= len(INGEST_REQUEST_LINE) or not INGEST_REQUEST_LINE.startswith(head):
            handler = self._server()
            transport.set_protocol(handler)
            handler.connection_made(transport)
            handler.data_received(head)
        else:  # a proper prefix of the ingest line, so shorter than it: keep reading
            self._head = head

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


class AdmissionSite(web.TCPSite):
    """A ``web.TCPSite`` that bounds unauthenticated sockets and sends ingest past ``limit`` away with a 503.

    ``count`` says how many connections count toward ``limit`` (default: every open aiohttp
    connection). With ``peer_gate``, each connection is a ``HeadReader`` until its request head
    is complete: at most ``peer_gate``'s share per address, and ``header_timeout_s`` to send it.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        limit: int,
        on_refused: Callable[[], None],
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
        count: Callable[[], int] | None = None,
        peer_gate: PeerGate | None = None,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        parked: ParkedBytes | None = None,
        penalty: IngestPenalty | None = None,
    ) -> None:
        """``clock`` is the one ``peer_gate.vouch`` is fed with (the runtime's monotonic clock).

        With ``peer_gate``, ``parked`` (default: ``ParkedBytes()``, 16 MiB) bounds the bytes all ingest
        connections together hold in unfinished messages (issue 13, finding 11). With ``peer_gate``,
        ``penalty`` answers an ingest upgrade within a refusal cooldown with a held-back 429 (``TARPIT_S``).
        """
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)
        self.limit = limit
        self.on_refused = on_refused
        self.busy = busy_response(limit)
        self._count = count
        self.peer_gate = peer_gate
        self.header_timeout_s = header_timeout_s
        self.clock = clock
        self.parked = parked if parked is not None else ParkedBytes()
        self.penalty = penalty
        self.metered: dict[ParkedConn, MeteredProtocol] = {}

    def shed(self, victims: list[ParkedConn]) -> None:
        """Close the connections the parked-bytes budget gave up on."""
        for conn in victims:
            metered = self.metered.get(conn)
            if metered is not None:
                metered.shed()

    def counted(self) -> int:
        """Connections that count toward ``limit`` now."""
        if self._count is not None:
            return self._count()
        return aiohttp_private.open_connections(aiohttp_private.site_server(self))

    def _protocol(self) -> asyncio.BaseProtocol:
        if self.peer_gate is not None:
            return HeadReader(self)
        server = aiohttp_private.site_server(self)
        if self.counted() < self.limit:
            return server()
        return _Sniffer(server, self.busy, self.on_refused)

    async def start(self) -> None:
        """TCPSite.start with our protocol factory in place of the runner's server."""
        await aiohttp_private.serve_with_factory(self, self._protocol)
