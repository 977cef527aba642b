"""The answers admission writes straight to a transport: canned HTTP refusals and a websocket close frame.

Each is the whole answer, pre-encoded, so refusing a connection costs no aiohttp
parser, handler or task (``collector.admission``). The JSON bodies are the
protocol's ``{"error", "detail"}`` (docs/protocol.md, section 7).

Not here: when to refuse (``collector.admission``, ``collector.head_reader``,
``collector.trust``), and anything that reads from a peer.
"""

from __future__ import annotations

import json
import math

from aiohttp import web

from collector.trust.penalty import Penalized


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


def close_frame(code: int, reason: str) -> bytes:
    """A server's websocket close frame (unmasked, RFC 6455 5.5.1), written straight to a transport."""
    payload = code.to_bytes(2, "big") + reason.encode()[:123]
    return bytes((0x88, len(payload))) + payload
