"""The body of ``GET /api/v1/nodes``: rendered off the event loop, streamed in chunks of nodes.

The loop copies out what each record holds (``NodeRow``, ~1 us a node); decoding and JSON
run in a worker thread, ``STREAM_CHUNK_NODES`` nodes at a time, each chunk written (and
drained) before the next is rendered. So a listing of the whole fleet never holds more than
one chunk's JSON: at the worst legal heartbeat (~84 KiB of JSON a node, issue 13 finding 6)
200 nodes are ~17 MiB, where one body for 10,000 such nodes would be ~840 MiB. A listing of
at most one chunk is one plain body with its Content-Length. The bytes are the same either
way: ``json.dumps`` of ``{"server_time_at", "nodes", "next_after"?}`` with default separators.

Each listing also holds one of ``ListingGate``'s slots from before it renders until its last
byte reached the socket, so however many clients ask at once, at most ``max_listings`` chunks
are held; one that finds none free within ``wait_s`` gets HTTP 503 with ``Retry-After``. A write
the socket does not take within ``send_timeout_s`` (a client that stopped reading) drops the
connection, so no client holds a slot for longer. ``/metrics`` scrapes hold slots of a gate of
their own the same way (``body_response``).

Not here: which records, paging parameters, the bearer check and the 503 itself
(``collector.http_api``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from collector.cache import stored_sample
from collector.trust.ratelog import LogGate, warn_limited
from shared.messages import Heartbeat, NodeFacts

# What the listing takes of one record on the event loop: its status map, facts, and last sample.
NodeRow = tuple[dict[str, Any], NodeFacts, bytes | None, Heartbeat | None]

log = logging.getLogger("nodewatch.collector")

# Nodes rendered and written per step of a streamed listing.
STREAM_CHUNK_NODES = 200
# Listings rendered or written at once: each holds up to one chunk's JSON (~17 MiB at the worst legal
# heartbeat) until the socket takes it, so 4 bound them to ~70 MiB however many clients ask at once.
DEFAULT_MAX_LISTINGS = 4
# A listing that finds every slot taken waits this long for one (an honest burst of viewers), then gets 503.
DEFAULT_LISTING_WAIT_S = 1.0
# One write of a listing (a chunk, or the whole body) reaches the socket within this long, or the
# connection is dropped: the subscribers' send timeout (collector.config.send_timeout_s).
DEFAULT_LISTING_SEND_TIMEOUT_S = 10.0
# The 503's Retry-After, in seconds: a slot frees as soon as one listing is written.
LISTING_RETRY_AFTER_S = 1
# /metrics scrapes rendered or written at once (each holds the whole text, ~1 KiB to ~138 KiB a node):
# Prometheus scrapes a target one at a time, so two leave room for a person with curl.
MAX_SCRAPES = 2


class ListingGate:
    """At most ``max_listings`` listings rendered or written at once; counts what it turned away or cut.

    ``acquire`` waits up to ``wait_s`` for a slot; every True from it is paired with a ``release``.
    """

    def __init__(
        self,
        max_listings: int = DEFAULT_MAX_LISTINGS,
        wait_s: float = DEFAULT_LISTING_WAIT_S,
        send_timeout_s: float = DEFAULT_LISTING_SEND_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        what: str = "/api/v1/nodes listing",
    ) -> None:
        if max_listings < 1 or not wait_s >= 0 or not send_timeout_s > 0:
            raise RuntimeError(
                f"expected max_listings >= 1, wait_s >= 0 and send_timeout_s > 0, "
                f"got {max_listings!r}, {wait_s!r} and {send_timeout_s!r}"
            )
        self.max_listings = max_listings
        self.wait_s = wait_s
        self.send_timeout_s = send_timeout_s
        self.clock = clock
        self.what = what
        self._free = asyncio.Semaphore(max_listings)
        self.active = 0  # listings holding a slot now
        self.refused = 0  # listings answered 503: no slot free within wait_s
        self.cut = 0  # listings whose connection was dropped: a write over send_timeout_s
        self._cut_log = LogGate()

    async def acquire(self) -> bool:
        """Take a slot, waiting up to ``wait_s``; False (counted) when none came free."""
        try:
            async with asyncio.timeout(self.wait_s):
                await self._free.acquire()
        except TimeoutError:
            self.refused += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        """Give back a slot ``acquire`` gave."""
        self.active -= 1
        self._free.release()

    def note_cut(self, peer: str) -> None:
        """Count a listing dropped for a write over ``send_timeout_s``, and log it (paced)."""
        self.cut += 1
        warn_limited(
            log, self._cut_log, "listing_too_slow", self.clock(),
            "http %r: dropping a %s: a write took over %g s", peer, self.what, self.send_timeout_s,
        )  # fmt: skip


def node_items(rows: Sequence[NodeRow]) -> list[dict[str, Any]]:
    """Each row as the JSON map of a ``NodeEntry`` without history; pure, safe in a thread."""
    items = []
    for status, facts, frame, model in rows:
        item: dict[str, Any] = {"status": status, "facts": facts.model_dump(mode="json", exclude_none=True)}
        sample = stored_sample(frame, model)
        if sample is not None:
            item["last_sample"] = sample.model_dump(mode="json", exclude_none=True)
        items.append(item)
    return items


def nodes_json(wall: float, rows: Sequence[NodeRow], next_after: str | None) -> bytes:
    """The whole body at once (a listing of at most one chunk)."""
    body: dict[str, Any] = {"server_time_at": wall, "nodes": node_items(rows)}
    if next_after is not None:
        body["next_after"] = next_after
    return json.dumps(body).encode()


def _chunk_json(rows: Sequence[NodeRow]) -> bytes:
    return ", ".join(json.dumps(item) for item in node_items(rows)).encode()


async def _send(response: web.StreamResponse, data: bytes, timeout_s: float, *, last: bool = False) -> None:
    """Write ``data`` (and the end of the body if ``last``) and wait until the socket took it."""
    async with asyncio.timeout(timeout_s):
        if last:
            await response.write_eof(data)
        else:
            await response.write(data)


async def listing_response(
    request: web.Request, gate: ListingGate, wall: float, rows: Sequence[NodeRow], next_after: str | None
) -> web.StreamResponse:
    """The listing: one body for a chunk or less, else streamed chunk by chunk (chunked transfer encoding).

    The caller holds one of ``gate``'s slots; each write waits until the socket took it, so the
    slot is held until the client has (nearly) everything. A client that leaves, or does not take
    one write within ``gate.send_timeout_s``, ends the listing there.
    """
    if len(rows) <= STREAM_CHUNK_NODES:
        body = await asyncio.to_thread(nodes_json, wall, rows, next_after)
        return await body_response(request, gate, body, "application/json")
    timeout_s = gate.send_timeout_s
    response = web.StreamResponse()
    response.content_type = "application/json"
    try:
        await response.prepare(request)
        await _send(response, b'{"server_time_at": ' + json.dumps(wall).encode() + b', "nodes": [', timeout_s)
        for start in range(0, len(rows), STREAM_CHUNK_NODES):
            chunk = await asyncio.to_thread(_chunk_json, rows[start : start + STREAM_CHUNK_NODES])
            await _send(response, chunk if start == 0 else b", " + chunk, timeout_s)
        tail = b"]" if next_after is None else b'], "next_after": ' + json.dumps(next_after).encode()
        await _send(response, tail + b"}", timeout_s, last=True)
    except TimeoutError:
        _cut(request, gate)
    except ConnectionError:
        log.debug("http %r: the client left during a /api/v1/nodes listing", request.remote)
    return response


async def body_response(request: web.Request, gate: ListingGate, body: bytes, content_type: str) -> web.StreamResponse:
    """``body`` in one write with its Content-Length, dropped (counted) if the socket does not take it in time."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = len(body)
    try:
        await response.prepare(request)
        await _send(response, body, gate.send_timeout_s, last=True)
    except TimeoutError:
        _cut(request, gate)
    except ConnectionError:
        log.debug("http %r: the client left during %s", request.remote, request.path[:100])
    return response


def _cut(request: web.Request, gate: ListingGate) -> None:
    gate.note_cut(str(request.remote))
    if request.transport is not None:
        request.transport.abort()  # close() would first wait for the unsent bytes to drain
