"""A global budget on bytes parked in ingest connections: received, but not yet taken as whole messages.

Issue 13, finding 11: a websocket message left unfinished (fragments with no
final one, or a frame whose payload never completes) parks its bytes in
aiohttp's reader, up to the frame cap per connection. 1,400 connections doing
so drove a collector under a 256 MiB limit to MemoryError. Each connection's
share is bounded by its ``max_msg_size``; this bounds them together.

``ParkedBytes`` counts, per connection (``ParkedConn``; every connection that
passed the admission site's head reader, in the total once it is an ingest
websocket: ``activate``), the bytes the socket
delivered minus those of the messages the handler took (``taken``: a
message's payload plus the largest client frame header, 14 bytes, so the
count errs low, never high, for an honest peer). An honest agent's count is a
frame or two at most. When the total passes ``budget_bytes``, ``received``
names the connections to shed, largest count first, until the total is back
to three quarters of the budget. A connection is a candidate only past
``MIN_SHED_BYTES``. A live connection holding ``LARGE_PARK_BYTES`` or more
(half a maximal frame: an honest agent holds a frame or two of ~1 KiB) is a
candidate at once; one holding less only once it has stopped making progress,
no data message taken for ``LIVE_STALL_S`` (a parker can make none: RFC 6455
allows no data message inside an unfinished fragmented one, and control
frames are not progress). In a 10,000-node connect storm the loop lags by
seconds and every honest connection holds a few queued heartbeats: shedding
all of them past 4 KiB closed ~2,200 honest agents with 1009 (bench/e2e.py).
Past ``EMERGENCY_FACTOR`` times the budget size alone decides. A connection
replaying a backlog at the shell's pace (its queue of whole frames is full by
design) is a candidate only once it has taken no data message for ``STALL_S``.

Pure: the caller passes ``now`` (monotonic) and executes the verdict (close
1009 ``parked_bytes_exceeded``). Not here: the protocol that counts bytes
(``collector.admission``) or the handler that reports messages taken
(``collector.ingest``).
"""

from __future__ import annotations

from dataclasses import dataclass

# 16 MiB: 256 connections with a whole 64 KiB frame unfinished at once. Honest agents park a frame
# of ~1 KiB for a round trip; bytes queued for a paced replay count too, but are not shed.
DEFAULT_PARKED_BUDGET_BYTES = 16 * 2**20
# A connection holding less than this is never shed: an honest heartbeat frame is ~600 bytes to 3 KiB.
MIN_SHED_BYTES = 4096
# A replaying connection takes a frame every millisecond or so; one that has taken none this long is stuck.
STALL_S = 1.0
# A live agent's handler takes a heartbeat every interval (at most 60 s, usually 1-5 s): one that has
# taken nothing for this long while holding MIN_SHED_BYTES is parked, or so far behind it is lost anyway.
LIVE_STALL_S = 10.0
# Over this multiple of the budget, live connections are shed by size alone (memory comes first).
EMERGENCY_FACTOR = 4
# A live connection parking this much is shed at once over the budget: half the largest legal frame.
LARGE_PARK_BYTES = 32 * 1024
# Largest header of a client frame (RFC 6455 5.2): 2 bytes, 8 of extended length, 4 of mask.
MAX_CLIENT_HEADER_BYTES = 14
# Over budget with nothing to shed (honest replays filling their queues), look again this often, not per chunk.
RESCAN_S = 0.1
# Shed down to this share of the budget, so one scan buys room for many chunks.
SHED_TO = 0.75


class ParkedBytes:
    """The parked-bytes budget of one collector; see the module docstring."""

    __slots__ = ("_conns", "_next_scan", "budget_bytes", "live_stall_s", "shed_total", "total")

    def __init__(self, budget_bytes: int = DEFAULT_PARKED_BUDGET_BYTES, *, live_stall_s: float = LIVE_STALL_S) -> None:
        if budget_bytes < MIN_SHED_BYTES:
            raise RuntimeError(f"expected budget_bytes >= {MIN_SHED_BYTES}, got {budget_bytes!r}")
        self.budget_bytes = budget_bytes
        self.live_stall_s = live_stall_s
        self.total = 0
        self.shed_total = 0  # connections shed since start, for logs and tests
        self._conns: set[ParkedConn] = set()
        self._next_scan = float("-inf")

    def __len__(self) -> int:
        return len(self._conns)

    def open(self, now: float) -> ParkedConn:
        """A new connection (its request head just arrived): counted by itself until ``activate``."""
        return ParkedConn(opened_at=now)

    def activate(self, conn: ParkedConn) -> None:
        """``conn`` became an ingest websocket: from now on it counts in the total, with every byte it received.

        Bytes of earlier requests on a kept-alive connection are counted too (an honest agent's
        connection has none but its upgrade request), so a peer gains nothing by upgrading late.
        """
        if not conn.active:
            conn.active = True
            self._conns.add(conn)
            self.total += conn.parked

    def close(self, conn: ParkedConn) -> None:
        """The connection is gone: its bytes are freed with it."""
        if conn in self._conns:
            self._conns.discard(conn)
            self.total -= conn.parked
        conn.parked = 0

    def received(self, conn: ParkedConn, size: int, now: float) -> list[ParkedConn]:
        """``size`` bytes arrived on ``conn``: the connections to shed now (usually none)."""
        conn.parked += size
        if not conn.active:
            return []
        self.total += size
        if self.total <= self.budget_bytes or now < self._next_scan:
            return []
        return self._shed(now)

    def taken(self, conn: ParkedConn, payload_bytes: int, now: float, *, data: bool) -> None:
        """The handler took one message of ``payload_bytes``; ``data`` for a binary or text one (progress)."""
        freed = min(conn.parked, payload_bytes + MAX_CLIENT_HEADER_BYTES)
        conn.parked -= freed
        if conn.active:
            self.total -= freed
        if data:
            conn.last_data_at = now

    def _candidate(self, conn: ParkedConn, now: float, *, emergency: bool) -> bool:
        if conn.parked < MIN_SHED_BYTES or conn.shed:
            return False
        since = conn.opened_at if conn.last_data_at is None else conn.last_data_at
        if conn.replaying:
            return now - since >= STALL_S
        return emergency or conn.parked >= LARGE_PARK_BYTES or now - since >= self.live_stall_s

    def _shed(self, now: float) -> list[ParkedConn]:
        """Largest candidates first, until the total is under ``SHED_TO`` of the budget; O(n).

        A scan that finds nothing to shed waits ``RESCAN_S`` before the next, so honest queues over the
        budget cost a scan every 100 ms, not one per chunk.
        """
        victims: list[ParkedConn] = []
        target = self.budget_bytes * SHED_TO
        total = self.total
        emergency = total > self.budget_bytes * EMERGENCY_FACTOR
        candidates = (c for c in self._conns if self._candidate(c, now, emergency=emergency))
        for conn in sorted(candidates, key=lambda c: -c.parked):
            if total <= target:
                break
            conn.shed = True
            total -= conn.parked
            victims.append(conn)
        if not victims:
            self._next_scan = now + RESCAN_S
        self.shed_total += len(victims)
        for conn in victims:
            self.close(conn)
        return victims


@dataclass(slots=True, eq=False)
class ParkedConn:
    """One ingest connection's count; the shell reads ``shed`` after the connection ends, to count it."""

    opened_at: float
    parked: int = 0
    last_data_at: float | None = None
    replaying: bool = False
    active: bool = False  # counted in the total: an ingest websocket (``activate``)
    shed: bool = False  # set by ``received`` when it names this connection
