"""What an ingest websocket parks in unfinished messages, counted against one budget for all connections.

Issue 13, finding 11: unfinished fragmented websocket messages parked ~147 KiB per
connection inside aiohttp, so 1,400 connections drove a collector under a 256 MiB limit to
MemoryError. ``MeteredProtocol`` sits in front of aiohttp's handler on every connection a
``collector.head_reader.HeadReader`` hands over, and tells ``collector.trust.parked`` how many
bytes arrived (one call per chunk); a connection the budget sheds gets a close frame.

Not here: the budget's arithmetic and who is shed (``collector.trust.parked``), and the
ingest handler's side, which reports the messages it took (``collector.ingest``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from collector.refusals import close_frame
from collector.trust.parked import ParkedBytes, ParkedConn
from shared.errors import CloseCode, ErrorReason

if TYPE_CHECKING:
    from collector.admission import AdmissionSite


class MeteredProtocol(asyncio.Protocol):
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
    return (protocol.parked, protocol.conn) if isinstance(protocol, MeteredProtocol) else None
