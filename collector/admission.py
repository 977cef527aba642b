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

With a ``PeerGate`` (issue 13, finding 4: 10,300 idle sockets with no token
gave every agent a 503), every new connection is first a ``_HeadReader``,
nginx-style: it holds one of the peer address's slots (32 per address, 512 for
an address a recent hello vouched for, 4,096 in all; more get HTTP 429 with
``Retry-After``) until its request head is
complete, and is closed if the head does not arrive within ``header_timeout_s``
(nginx's ``client_header_timeout``) or grows past ``MAX_HEAD_BYTES`` (431).
Only then is it handed to aiohttp, through ``_Metered``, which counts the
bytes an ingest websocket parks in unfinished messages against one budget for
all (``collector.trust.parked``, finding 11: one call per chunk). What
counts toward ``limit`` is ``count()``: the CLI counts upgraded, authenticated
ingest websockets, so idle sockets no longer crowd agents out. An ingest
request whose address and agent token are in a refusal cooldown
(``collector.trust.penalty``: a flooder refused 4430 again and again) gets
HTTP 429 from the head reader, held back up to ``TARPIT_S`` with its slot.

Not here: the node cap itself (``NodeCache``, close 4503 after the hello),
auth (``collector.http_api``) and the per-address arithmetic
(``collector.trust.nodetable.PeerGate``). The private aiohttp names it needs
are borrowed through ``collector.aiohttp_private``.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from collections.abc import Callable

from aiohttp import web

from collector import aiohttp_private
from collector.trust.nodetable import PeerGate, PeerRefused, PeerSlot
from collector.trust.parked import ParkedBytes, ParkedConn
from collector.trust.penalty import IngestPenalty, Penalized
from shared.errors import CloseCode, ErrorReason
from shared.limits import INGEST_PATH

INGEST_REQUEST_LINE = b"GET " + INGEST_PATH.encode()
# A request head (request line and headers) larger than this is refused with 431 before aiohttp parses
# it: aiohttp's own cap is 8,190 bytes per line and 32 KiB of headers; an agent's head is ~300 bytes.
MAX_HEAD_BYTES = 16 * 1024
# nginx's client_header_timeout is 60 s; an agent sends its head in one packet right after connecting.
DEFAULT_HEADER_TIMEOUT_S = 10.0
_HEAD_END = b"\r\n\r\n"
# An ingest upgrade within a refusal cooldown waits this long (at most) for its 429, holding its peer slot:
# a reconnect loop then costs one accept a second, not hundreds, and a parallel one fills its address's
# slots and gets PeerGate's instant 429s (docs/security.md, 3.3).
TARPIT_S = 1.0


def canned_response(status: str, error: str, detail: str, retry_after_s: float | None = None) -> bytes:
    """A whole HTTP/1.1 answer with the protocol's JSON error body, then ``Connection: close``."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    retry = "" if retry_after_s is None else f"Retry-After: {max(1, round(retry_after_s))}\r\n"
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{retry}Connection: close\r\n\r\n"
    )
    return head.encode() + body


def penalty_response(penalized: Penalized) -> web.Response:
    """HTTP 429 with ``Retry-After`` for an ingest upgrade in a refusal cooldown (``collector.trust.penalty``)."""
    body = json.dumps({"error": "rate_exceeded", "detail": penalized.detail})
    retry = str(max(1, math.ceil(penalized.retry_after_s)))
    return web.Response(
        status=429, text=body, content_type="application/json", headers={"Retry-After": retry, "Connection": "close"}
    )


def busy_response(limit: int) -> bytes:
    """The whole HTTP 503 answer, encoded once per site rather than per refused connection."""
    detail = f"expected at most {limit} open connections, retry later"
    return canned_response("503 Service Unavailable", "capacity_reached", detail, retry_after_s=5.0)


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


class _HeadReader(asyncio.Protocol):
    """Holds a peer slot until the request head is complete (or times out), then hands the socket to aiohttp."""

    def __init__(self, site: AdmissionSite) -> None:
        self._site = site
        self._transport: asyncio.Transport | None = None
        self._slot: PeerSlot | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head = b""
        self._address = ""
        self._tarpitted = False  # waiting for its 429: whatever else it sends is ignored

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        site = self._site
        peer = transport.get_extra_info("peername")
        address = self._address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        gate = site.peer_gate
        slot = gate.open(address, site.clock()) if gate is not None else None
        if isinstance(slot, PeerRefused):
            transport.write(
                canned_response("429 Too Many Requests", "too_many_connections", slot.detail, slot.retry_after_s)
            )
            transport.close()
            self._transport = None
            return
        self._slot = slot
        self._timer = asyncio.get_running_loop().call_later(site.header_timeout_s, self._expire)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or self._tarpitted:
            return
        searched = max(0, len(self._head) - len(_HEAD_END) + 1)
        head = self._head + data
        if head.find(_HEAD_END, searched) < 0:
            if len(head) > MAX_HEAD_BYTES:
                detail = f"expected a request head of at most {MAX_HEAD_BYTES} bytes, got more"
                self._end(canned_response("431 Request Header Fields Too Large", "bad_request", detail))
            else:
                self._head = head
            return
        site = self._site
        if head.startswith(INGEST_REQUEST_LINE) and site.penalty is not None:
            penalized = site.penalty.check(self._address, head, site.clock())
            if penalized is not None:
                self._tarpit(penalized)
                return
        self._release()
        if head.startswith(INGEST_REQUEST_LINE) and site.counted() >= site.limit:
            transport.write(site.busy)
            transport.close()
            self._transport = None
            site.on_refused()
            return
        self._transport = None
        handler: asyncio.Protocol = aiohttp_private.site_server(site)()
        if site.parked is not None:  # every connection: a kept-alive one may upgrade to ingest later
            handler = _Metered(site, handler, site.parked)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(head)

    def _tarpit(self, penalized: Penalized) -> None:
        """Within a refusal cooldown: answer 429 after up to ``TARPIT_S``, holding the peer slot meanwhile."""
        if self._timer is not None:
            self._timer.cancel()
        delay = min(TARPIT_S, penalized.retry_after_s)
        response = canned_response(
            "429 Too Many Requests", "rate_exceeded", penalized.detail, max(0.0, penalized.retry_after_s - delay)
        )
        self._head = b""
        self._timer = asyncio.get_running_loop().call_later(delay, self._end, response)
        self._tarpitted = True

    def _expire(self) -> None:
        """No complete request head in time: an idle or slow socket gives its slot back (408, then closed)."""
        self._timer = None
        detail = f"expected a request head within {self._site.header_timeout_s:g} s, got none"
        self._end(canned_response("408 Request Timeout", "request_timeout", detail))

    def _end(self, response: bytes) -> None:
        transport = self._transport
        self._release()
        if transport is not None:
            transport.write(response)
            transport.close()
        self._transport = None

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._slot is not None and self._site.peer_gate is not None:
            self._site.peer_gate.release(self._slot)
        self._slot = None

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self._transport = None


def close_frame(code: int, reason: str) -> bytes:
    """A server's websocket close frame (unmasked, RFC 6455 5.5.1), written straight to a transport."""
    payload = code.to_bytes(2, "big") + reason.encode()[:123]
    return bytes((0x88, len(payload))) + payload


class _Metered(asyncio.Protocol):
    """In front of aiohttp's handler on every connection: counts what an ingest websocket parks (``ParkedBytes``).

    Every call is passed on; a connection the budget sheds gets a close frame, 1009
    ``parked_bytes_exceeded``, and no more of its bytes reach aiohttp.
    """

    def __init__(self, site: AdmissionSite, handler: asyncio.Protocol, parked: ParkedBytes) -> None:
        self._site = site
        self._handler = handler
        self.parked = parked
        self.conn = parked.open(site.clock())
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._site.metered[self.conn] = self
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        victims = self.parked.received(self.conn, len(data), self._site.clock())
        if victims:
            self._site.shed(victims)
        if not self.conn.shed:
            self._handler.data_received(data)

    def shed(self) -> None:
        """Over the budget, and among the largest: a close frame, then close (the handler hears connection_lost)."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(close_frame(int(CloseCode.MESSAGE_TOO_BIG), ErrorReason.PARKED_BYTES_EXCEEDED.value))
            transport.close()

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.parked.close(self.conn)
        self._site.metered.pop(self.conn, None)
        self._transport = None
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()


def parked_meter(transport: asyncio.BaseTransport | None) -> tuple[ParkedBytes, ParkedConn] | None:
    """The parked-bytes budget and count of a connection behind an ``AdmissionSite``, else None.

    The ingest handler ``activate``s the count: from then on it is in the budget's total.
    """
    protocol = transport.get_protocol() if transport is not None else None
    return (protocol.parked, protocol.conn) if isinstance(protocol, _Metered) else None


class AdmissionSite(web.TCPSite):
    """A ``web.TCPSite`` that bounds unauthenticated sockets and sends ingest past ``limit`` away with a 503.

    ``count`` says how many connections count toward ``limit`` (default: every open aiohttp
    connection). With ``peer_gate``, each connection is a ``_HeadReader`` until its request head
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
        self.metered: dict[ParkedConn, _Metered] = {}

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
            return _HeadReader(self)
        server = aiohttp_private.site_server(self)
        if self.counted() < self.limit:
            return server()
        return _Sniffer(server, self.busy, self.on_refused)

    async def start(self) -> None:
        """TCPSite.start with our protocol factory in place of the runner's server."""
        await aiohttp_private.serve_with_factory(self, self._protocol)
