"""The first protocol of every connection behind a ``PeerGate``: it reads the request head, nginx-style.

Issue 13, finding 4: 10,300 idle sockets with no token gave every agent a 503. So a new
connection is first a ``HeadReader``: it holds one of the peer address's slots (32 per
address, 512 for an address a recent hello vouched for, 4,096 in all; more get HTTP 429
with ``Retry-After``) until its request head is complete, and is closed if the head does not
arrive within ``header_timeout_s`` (nginx's ``client_header_timeout``: 408) or grows past
``MAX_HEAD_BYTES`` (431). An ingest request whose address and agent token are in a refusal
cooldown (``collector.trust.penalty``: a flooder refused 4430 again and again) gets HTTP 429
from here, held back up to ``TARPIT_S`` with its slot. An ingest request past the site's
limit gets the site's 503. Anything else is handed to aiohttp, through
``collector.parked_meter.MeteredProtocol``.

Not here: the site and its limit (``collector.admission``), the per-address arithmetic
(``collector.trust.nodetable.PeerGate``) and the encoded answers (``collector.refusals``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from collector import aiohttp_private
from collector.parked_meter import MeteredProtocol
from collector.refusals import canned_response
from collector.trust.nodetable import PeerRefused, PeerSlot
from collector.trust.penalty import Penalized
from shared.limits import INGEST_PATH

if TYPE_CHECKING:
    from collector.admission import AdmissionSite

INGEST_REQUEST_LINE = b"GET " + INGEST_PATH.encode()
# A request head (request line and headers) larger than this is refused with 431 before aiohttp parses
# it: aiohttp's own cap is 8,190 bytes per line and 32 KiB of headers; an agent's head is ~300 bytes.
MAX_HEAD_BYTES = 16 * 1024
_HEAD_END = b"\r\n\r\n"
# An ingest upgrade within a refusal cooldown waits this long (at most) for its 429, holding its peer slot:
# a reconnect loop then costs one accept a second, not hundreds, and a parallel one fills its address's
# slots and gets PeerGate's instant 429s (docs/security.md, 3.3).
TARPIT_S = 1.0


class HeadReader(asyncio.Protocol):
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
            handler = MeteredProtocol(site, handler, site.parked)
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
