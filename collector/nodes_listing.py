"""The body of ``GET /api/v1/nodes``: rendered off the event loop, streamed in chunks of nodes.

The loop copies out what each record holds (``NodeRow``, ~1 us a node); decoding and JSON
run in a worker thread, ``STREAM_CHUNK_NODES`` nodes at a time, each chunk written (and
drained) before the next is rendered. So a listing of the whole fleet never holds more than
one chunk's JSON: at the worst legal heartbeat (~84 KiB of JSON a node, issue 13 finding 6)
200 nodes are ~17 MiB, where one body for 10,000 such nodes would be ~840 MiB. A listing of
at most one chunk is one plain body with its Content-Length. The bytes are the same either
way: ``json.dumps`` of ``{"server_time_at", "nodes", "next_after"?}`` with default separators.

Not here: which records, paging parameters and the bearer check (``collector.http_api``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from collector.cache import stored_sample
from shared.messages import Heartbeat, NodeFacts

# What the listing takes of one record on the event loop: its status map, facts, and last sample.
NodeRow = tuple[dict[str, Any], NodeFacts, bytes | None, Heartbeat | None]

# Nodes rendered and written per step of a streamed listing.
STREAM_CHUNK_NODES = 200


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


async def listing_response(
    request: web.Request, wall: float, rows: Sequence[NodeRow], next_after: str | None
) -> web.StreamResponse:
    """The listing: one body for a chunk or less, else streamed chunk by chunk (chunked transfer encoding)."""
    if len(rows) <= STREAM_CHUNK_NODES:
        body = await asyncio.to_thread(nodes_json, wall, rows, next_after)
        return web.Response(body=body, content_type="application/json")
    response = web.StreamResponse()
    response.content_type = "application/json"
    await response.prepare(request)
    await response.write(b'{"server_time_at": ' + json.dumps(wall).encode() + b', "nodes": [')
    for start in range(0, len(rows), STREAM_CHUNK_NODES):
        chunk = await asyncio.to_thread(_chunk_json, rows[start : start + STREAM_CHUNK_NODES])
        await response.write(chunk if start == 0 else b", " + chunk)
    tail = b"]" if next_after is None else b'], "next_after": ' + json.dumps(next_after).encode()
    await response.write(tail + b"}")
    await response.write_eof()
    return response
