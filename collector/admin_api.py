"""The operator's node-key endpoints, behind an admin token: forget a node, rotate or pin its key, list keys.

- ``GET /api/v1/keys``: every node id's key fingerprint (never a credential or key).
- ``DELETE /api/v1/nodes/{node_id}``: forget the node and its key; its id is trusted on first use
  again. A connected node's connection is dropped; the node then leaves the table.
- ``POST /api/v1/nodes/{node_id}/rotate-key``: the next different key is accepted once within
  the rotation window (24 h); the recorded key keeps working meanwhile.
- ``PUT /api/v1/nodes/{node_id}/key`` with ``{"fingerprint": "SHA256:..."}``: bind the node id
  to the fingerprint ``nodewatch agent --print-fingerprint`` printed, with no race. A connection
  that holds the node with another key is dropped (the way to evict a squatter).

With no admin token configured (``--admin-token-file``) every one of them answers 403: an
operator action must never be open to whoever reaches the port. A wrong token gets the usual
401. Key records live in the collector's memory (``IdentityTable``) until the store keeps them.

Not here: the TOFU rules (``collector.trust.identity``), agent or viewer auth (``collector.http_api``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from collector.http_api import json_error, token_ok, unauthorized
from collector.runtime import CollectorRuntime
from collector.trust.identity import KeyRecord
from shared.limits import NODES_PATH

log = logging.getLogger("nodewatch.collector")

KEYS_PATH = "/api/v1/keys"
# A pin body is one short JSON object; anything bigger is not one.
MAX_BODY_BYTES = 1024


def record_json(record: KeyRecord) -> dict[str, Any]:
    """One key record as the admin API shows it: fingerprints and times, never a credential."""
    return {
        "node_id": record.node_id,
        "fingerprint": record.fingerprint,
        "first_seen_at": record.first_seen_at,
        "last_seen_at": record.last_seen_at,
        "rotate_until_at": record.rotate_until_at,
        "mismatches": record.mismatches,
    }


def _pinned_fingerprint(body: bytes) -> str:
    """The fingerprint of a pin request's body ``{"fingerprint": "SHA256:..."}``; ValueError naming what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"expected a body of at most {MAX_BODY_BYTES} bytes, got more")
    parsed = json.loads(body)
    text = parsed.get("fingerprint") if isinstance(parsed, dict) else None
    if not isinstance(text, str):
        raise ValueError(f"expected {{'fingerprint': 'SHA256:...'}}, got {body[:80]!r}")  # noqa: TRY004 - a 400
    return text


class AdminApi:
    """The admin endpoints of one collector; ``add_routes`` registers them before the ``/api/`` catch-all."""

    def __init__(self, runtime: CollectorRuntime, admin_tokens: frozenset[str]) -> None:
        self.runtime = runtime
        self._tokens = [t.encode() for t in admin_tokens]

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the four endpoints."""
        router.add_get(KEYS_PATH, self.keys)
        router.add_delete(NODES_PATH + "/{node_id}", self.forget)
        router.add_post(NODES_PATH + "/{node_id}/rotate-key", self.rotate)
        router.add_put(NODES_PATH + "/{node_id}/key", self.pin)

    def _refused(self, request: web.Request) -> web.Response | None:
        """403 with no admin token configured, 401 for a wrong one, None to go on."""
        if not self._tokens:
            detail = "expected an admin token to be configured (--admin-token-file), got none: admin API is off"
            return json_error(403, "forbidden", detail)
        if not token_ok(request, self._tokens):
            return unauthorized(self.runtime, request, "admin", "admin")
        return None

    async def keys(self, request: web.Request) -> web.Response:
        """``GET /api/v1/keys``: every key record, by node id."""
        if (refused := self._refused(request)) is not None:
            return refused
        records = self.runtime.hello_gate.identity.records()
        return web.json_response({"keys": [record_json(r) for r in records]})

    async def forget(self, request: web.Request) -> web.Response:
        """``DELETE /api/v1/nodes/{node_id}``: drop the node and its key record."""
        if (refused := self._refused(request)) is not None:
            return refused
        runtime, node_id = self.runtime, request.match_info["node_id"]
        had_key = runtime.hello_gate.identity.forget(node_id)
        record = runtime.cache.get(node_id)
        dropped = record is not None and record.conn is not None
        if record is not None and record.conn is not None:
            runtime.drop_agent(record.conn, "forgotten by an operator; dropping its connection")
            record.conn = None  # the dropped session's close then finds no connection of its own
        changes = runtime.cache.forget(node_id)
        runtime.publish(changes)
        if not had_key and not changes:
            return json_error(404, "not_found", f"expected a known node id, got {node_id[:128]!r}")
        log.warning("admin %r: forgot node %r (key record: %s)", request.remote, node_id, had_key)
        return web.json_response({"node_id": node_id, "key_forgotten": had_key, "connection_dropped": dropped})

    async def rotate(self, request: web.Request) -> web.Response:
        """``POST /api/v1/nodes/{node_id}/rotate-key``: accept the next different key once."""
        if (refused := self._refused(request)) is not None:
            return refused
        runtime, node_id = self.runtime, request.match_info["node_id"]
        record = runtime.hello_gate.identity.rotate(node_id, runtime.wall_clock())
        if record is None:
            return json_error(404, "not_found", f"expected a node id with a key record, got {node_id[:128]!r}")
        log.warning(
            "admin %r: key rotation opened for node %r until %r", request.remote, node_id, record.rotate_until_at
        )
        return web.json_response(record_json(record))

    async def pin(self, request: web.Request) -> web.Response:
        """``PUT /api/v1/nodes/{node_id}/key``: bind the node id to a fingerprint now; drop the node's connection."""
        if (refused := self._refused(request)) is not None:
            return refused
        runtime, node_id = self.runtime, request.match_info["node_id"]
        body = await request.content.read(MAX_BODY_BYTES + 1)
        try:
            record = runtime.hello_gate.identity.pin(node_id, _pinned_fingerprint(body), runtime.wall_clock())
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            return json_error(400, "bad_request", str(exc)[:300])
        node = runtime.cache.get(node_id)
        if node is not None and node.conn is not None:
            # The holder may have another key: it reconnects, and only the pinned key gets back in.
            runtime.drop_agent(node.conn, "key pinned by an operator; dropping its connection")
        return web.json_response(record_json(record))
