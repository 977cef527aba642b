"""Admission control at accept time: past a connection limit, new ingest connections get a canned 503.

Why here and not in the ingest handler: aiohttp gives every accepted socket a
request handler, an HTTP parser and a task before any handler of ours runs.
With 8,000 refused agents reconnecting every second or two, those piled up by
the thousand faster than one core could refuse them, and a collector under a
256 MiB address-space limit died of MemoryError. So once ``limit``
connections are open, a new connection first gets a tiny protocol that reads
its request line: an ingest upgrade gets a pre-encoded HTTP 503 (JSON body)
and is closed, costing no parser, task or msgpack; anything else (health,
metrics, the JSON API, subscribers) is handed to aiohttp unchanged, so the
collector stays observable while it sheds agents.

Not here: the node cap itself (``NodeCache``, close 4503 after the hello) and
auth (``collector.http_api``). The private aiohttp names it needs are
borrowed through ``collector.aiohttp_private``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable

from aiohttp import web

from collector import aiohttp_private
from shared.limits import INGEST_PATH

INGEST_REQUEST_LINE = b"GET " + INGEST_PATH.encode()


def busy_response(limit: int) -> bytes:
    """The whole HTTP 503 answer, encoded once per site rather than per refused connection."""
    body = json.dumps(
        {"error": "capacity_reached", "detail": f"expected at most {limit} open connections, retry later"}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 5\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


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
    """A ``web.TCPSite`` whose protocol factory sends new ingest connections past ``limit`` away with a 503."""

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
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)
        self._limit = limit
        self._on_refused = on_refused
        self._response = busy_response(limit)

    def _protocol(self) -> asyncio.BaseProtocol:
        server = aiohttp_private.site_server(self)
        if aiohttp_private.open_connections(server) < self._limit:
            return server()
        return _Sniffer(server, self._response, self._on_refused)

    async def start(self) -> None:
        """TCPSite.start with our protocol factory in place of the runner's server."""
        await aiohttp_private.serve_with_factory(self, self._protocol)
