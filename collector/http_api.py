"""The JSON API and /metrics, the bearer check every endpoint shares, and small HTTP helpers.

Handlers here answer plain HTTP: health (open, counts only), the node list and
one node (viewer token), Prometheus ``/metrics`` (viewer token) and a JSON 404
for any other ``/api/`` path. A bug in one of them answers that one request
with a JSON 500, counted and logged in one line (``internal_errors``).

Not here: the websocket handlers (``collector.ingest``, ``collector.subscribe``)
and how records become JSON (``collector.wire``).
"""

from __future__ import annotations

import asyncio
import bisect
import hmac
import logging
import math
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from collector import wire
from collector.cache import STATES
from collector.changes import ChangeKind
from collector.metrics import ListingCounts, render_metrics, take_snapshot
from collector.nodes_listing import LISTING_RETRY_AFTER_S, MAX_SCRAPES, ListingGate, body_response, listing_response
from collector.runtime import CollectorRuntime
from collector.store.assemble import raw_result
from collector.store.codec import Columns
from collector.store.policy import MAX_POINTS
from shared import __version__
from shared.limits import HEALTH_PATH, INGEST_PATH, METRICS_PATH, NODES_PATH, PROTOCOL_VERSION, SUBSCRIBE_PATH
from shared.messages import NodeState

log = logging.getLogger("nodewatch.collector")

# A history request without from= covers the last hour.
DEFAULT_HISTORY_S = 3600.0
# Nodes per page of /api/v1/nodes?limit=: at the worst legal heartbeat (~60 KiB of JSON a node,
# issue 13 finding 6) a page is ~60 MiB, rendered in a worker thread; a client pages on with after=.
MAX_PAGE_NODES = 1000

ENDPOINTS = (
    f"GET {HEALTH_PATH}",
    f"GET {NODES_PATH}[?state=online|stale|offline][&limit=N&after=NODE_ID]",
    f"GET {NODES_PATH}/{{node_id}}",
    f"GET {NODES_PATH}/{{node_id}}/history[?from=&to=&step=]",
    f"GET {INGEST_PATH} (websocket, agents)",
    f"GET {SUBSCRIBE_PATH}[?format=json] (websocket, viewers)",
    f"GET {METRICS_PATH}",
)


def token_ok(request: web.Request, tokens: list[bytes]) -> bool:
    """True if ``Authorization: Bearer <token>`` names one of ``tokens`` (or there are none to check).

    A header that is not valid UTF-8 (aiohttp hands it over with surrogate escapes) matches no token.
    """
    if not tokens:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    try:
        candidate = presented.strip().encode()
    except UnicodeEncodeError:
        return False
    ok = False
    for token in tokens:  # no early exit: every token is compared, in constant time each
        ok |= hmac.compare_digest(candidate, token)
    return ok and scheme.lower() == "bearer"


def unauthorized(runtime: CollectorRuntime, request: web.Request, endpoint: str, kind: str) -> web.Response:
    """Count an auth failure, log one line, and answer 401 with a JSON body."""
    runtime.stats.auth_failures[endpoint] += 1
    log.warning("%s %r: refused with 401: missing or wrong %s token", endpoint, request.remote, kind)
    return web.json_response(
        {"error": "unauthorized", "detail": f"expected 'Authorization: Bearer <{kind} token>'"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="nodewatch"'},
    )


def json_error(status: int, error: str, detail: str) -> web.Response:
    """An HTTP error with the protocol's JSON body (docs/protocol.md, section 7)."""
    return web.json_response({"error": error, "detail": detail}, status=status)


async def upgrade(
    request: web.Request,
    *,
    heartbeat_s: float | None,
    max_msg_bytes: int,
    close_timeout_s: float,
    autoping: bool = True,
) -> web.WebSocketResponse | web.Response:
    """The prepared websocket, or the answer for a request that cannot have one.

    A request that is no websocket upgrade gets a JSON 400 (aiohttp would answer
    text/plain). A peer that hung up before the 101 went out gets a response that is
    never delivered: aiohttp's writer raises ConnectionError on the closed transport and
    handles it quietly, instead of logging a 500 traceback per impatient client.
    ``autoping=False`` hands pings (and pongs) to the caller's receive loop, to budget them.
    """
    ws = web.WebSocketResponse(
        heartbeat=heartbeat_s, max_msg_size=max_msg_bytes, compress=False, timeout=close_timeout_s, autoping=autoping
    )
    if not ws.can_prepare(request).ok:
        return json_error(400, "bad_request", f"expected a websocket upgrade on {request.path!r}, got a plain request")
    try:
        await ws.prepare(request)
    except ConnectionError:
        log.debug("%r: the peer left before the websocket handshake finished", request.remote)
        return web.Response(status=400)
    return ws


def fanout_health(runtime: CollectorRuntime) -> dict[str, int]:
    """The fan-out's counters: encodings against frames queued show each update packed once per format."""
    stats = runtime.fanout.stats
    return {
        "max_subscribers": runtime.fanout.limits.max_subscribers,
        "flushes": stats.flushes,
        "frames_packed": stats.frames_packed,
        "frames_queued": stats.frames_queued,
        "cut_unsent_bytes": stats.cut_unsent,
        "refused_full": stats.refused_full,
        "snapshot_entries_packed": runtime.fanout.snapshots.packed,
        # Viewers slower than the stream get coalesced updates (docs/protocol.md 4.2, step 5).
        "subscribers_lagging": sum(sub.outbox.behind is not None for sub in runtime.subscribers),
        "unsent_bytes_max": max((sub.outbox.unsent_bytes() for sub in runtime.subscribers), default=0),
        "lagged": stats.lagged,
        "coalesced_updates": stats.coalesced_updates,
        "rejoined": stats.rejoined,
    }


def node_page(query: Mapping[str, str]) -> tuple[int | None, str | None]:
    """``limit`` (1 to ``MAX_PAGE_NODES``; absent: every node) and ``after`` (a node id; absent: from the start).

    Raises ValueError naming the parameter and what it accepts.
    """
    text = query.get("limit")
    limit = None
    if text is not None:
        if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_NODES:
            raise ValueError(f"expected limit=1..{MAX_PAGE_NODES}, got {text[:40]!r}")
        limit = int(text)
    return limit, query.get("after")


def history_range(query: Mapping[str, str], wall: float) -> tuple[float, float, float]:
    """``from``, ``to`` (epoch seconds; default the last hour) and ``step`` (seconds, default 0: finest).

    Raises ValueError naming the parameter and what it accepts.
    """
    values: dict[str, float] = {}
    for name in ("from", "to", "step"):
        text = query.get(name)
        if text is None or text == "":
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected {name}= a number of seconds >= 0, got {text[:40]!r}")
        values[name] = value
    to_at = values.get("to", wall)
    from_at = values.get("from", to_at - DEFAULT_HISTORY_S)
    if from_at > to_at:
        raise ValueError(f"expected from <= to, got from={from_at:g} to={to_at:g}")
    return from_at, to_at, values.get("step", 0.0)


class HttpApi:
    """The plain HTTP handlers of one collector."""

    def __init__(self, runtime: CollectorRuntime) -> None:
        self.runtime = runtime
        cfg = runtime.config
        self.listings = ListingGate(cfg.max_listings, cfg.listing_wait_s, cfg.listing_send_timeout_s, runtime.clock)
        self.scrapes = ListingGate(MAX_SCRAPES, cfg.listing_wait_s, cfg.listing_send_timeout_s, runtime.clock, "scrape")

    @web.middleware
    async def internal_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A bug in a handler answers that request with a JSON 500, counted and logged in one line."""
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - one request fails, never the collector
            self.runtime.internal_error("http", str(request.remote), exc)
            return json_error(500, "internal", "expected to answer this request, got an internal error")

    async def health(self, request: web.Request) -> web.Response:
        """``GET /api/v1/health``: counts only, open without a token; 503 when the event loop lags."""
        runtime = self.runtime
        now = runtime.clock()
        loop_now = asyncio.get_running_loop().time()
        nodes: dict[str, int] = {"total": len(runtime.cache)}
        nodes.update(runtime.cache.counts())
        lag_max_s = runtime.lag.max_s(loop_now)
        healthy = lag_max_s <= runtime.config.lag_unhealthy_s
        reasons = [] if healthy else [f"event loop lag {lag_max_s * 1000:.0f} ms"]
        store = None if runtime.store is None else runtime.store.health_map()
        if store is not None and store["status"] != "ok":
            healthy = False
            reasons.append(str(store["reason"]))
        body: dict[str, object] = {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "started_at": runtime.started_at,
            "uptime_s": round(now - runtime.started_mono, 3),
            "nodes": nodes,
            "agents_connected": len(runtime.agents),
            "subscribers": len(runtime.subscribers),
            "fanout": fanout_health(runtime),
            "ingest_heartbeats_per_s": runtime.ingest_rate.rate_per_s(now),
            "heartbeats_received": runtime.stats.heartbeats_received,
            "event_loop_lag_ms": round(runtime.lag.last_s * 1000, 3),
            "event_loop_lag_max_ms": round(lag_max_s * 1000, 3),
            "alerts": runtime.alerts.health(),  # failed deliveries show here, never as 503
        }
        if reasons:
            body["reason"] = "; ".join(reasons)
        body["store"] = store if store is not None else {"status": "off", "reason": "--ephemeral: nothing on disk"}
        return web.json_response(body, status=200 if healthy else 503)

    async def nodes(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/nodes[?state=]``: every node's status, facts and last sample."""
        runtime = self.runtime
        if not token_ok(request, runtime.viewer_tokens):
            return unauthorized(runtime, request, "http", "viewer")
        wanted = request.query.get("state")
        state: NodeState | None = next((s for s in STATES if s == wanted), None)
        if wanted is not None and state is None:
            return json_error(400, "bad_request", f"expected state=online|stale|offline, got {wanted[:40]!r}")
        try:
            limit, after = node_page(request.query)
        except ValueError as exc:
            return json_error(400, "bad_request", str(exc))
        if not await self.listings.acquire():
            return self.gate_full(request, self.listings, "node listings", "listing_limit")
        try:
            records = runtime.cache.nodes(state)  # sorted by node id
            start = 0 if after is None else bisect.bisect_right(records, after, key=lambda r: r.node_id)
            end = len(records) if limit is None else min(len(records), start + limit)
            next_after = records[end - 1].node_id if end < len(records) else None
            # On the loop only what a record holds (~1 us a node); decoding and JSON run in a thread.
            rows = [
                (wire.status_wire(r), r.facts, r.last_sample_frame, r.last_sample_model) for r in records[start:end]
            ]
            return await listing_response(request, self.listings, runtime.wall_clock(), rows, next_after)
        finally:
            self.listings.release()

    def gate_full(self, request: web.Request, gate: ListingGate, what: str, reason: str) -> web.Response:
        """503 with Retry-After: every slot of ``gate`` is being rendered or written (counted, logged paced)."""
        detail = (
            f"expected at most {gate.max_listings} {what} at once, got one more "
            f"(no slot came free within {gate.wait_s:g} s); retry after {LISTING_RETRY_AFTER_S} s"
        )
        self.runtime.count_close("http", str(request.remote), 503, reason, detail)
        response = json_error(503, "capacity_reached", detail)
        response.headers["Retry-After"] = str(LISTING_RETRY_AFTER_S)
        return response

    async def node(self, request: web.Request) -> web.Response:
        """``GET /api/v1/nodes/{node_id}``: one node with its full history."""
        runtime = self.runtime
        if not token_ok(request, runtime.viewer_tokens):
            return unauthorized(runtime, request, "http", "viewer")
        node_id = request.match_info["node_id"]
        record = runtime.cache.get(node_id)
        if record is None:
            return json_error(404, "not_found", f"expected a known node id, got {node_id[:128]!r}")
        entry = wire.entry(record, ChangeKind.FACTS | ChangeKind.SAMPLE, record.history.to_history())
        return web.json_response(
            {"server_time_at": runtime.wall_clock(), **entry.model_dump(mode="json", exclude_none=True)}
        )

    async def history(self, request: web.Request) -> web.Response:
        """``GET /api/v1/nodes/{node_id}/history?from=&to=&step=``: one node's history, tier picked by the range.

        With a store the answer comes from it (raw, 1-min or 1-h tier, ``RetentionPolicy.choose``);
        without one, from the node's in-memory window, as the raw tier. Gaps are listed, never filled.
        """
        runtime = self.runtime
        if not token_ok(request, runtime.viewer_tokens):
            return unauthorized(runtime, request, "http", "viewer")
        node_id = request.match_info["node_id"]
        wall = runtime.wall_clock()
        try:
            from_at, to_at, step_s = history_range(request.query, wall)
        except ValueError as exc:
            return json_error(400, "bad_request", str(exc))
        record = runtime.cache.get(node_id)
        if record is None:
            return json_error(404, "not_found", f"expected a known node id, got {node_id[:128]!r}")
        if runtime.store is not None:
            result = await runtime.store.query(node_id, from_at, to_at, step_s)
        else:
            points = [p for p in record.history.points() if from_at <= p[1] <= to_at]
            cols = Columns.from_values([p[0] for p in points], [p[1] for p in points], [p[2] for p in points])
            step = max(step_s, (to_at - from_at) / MAX_POINTS)
            result = raw_result(node_id, cols, from_at, to_at, step_s=step, interval_s=record.interval_s)
        return web.json_response({"server_time_at": wall, "from_at": from_at, "to_at": to_at, **result.to_map()})

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """``GET /metrics``: Prometheus text exposition, built at scrape time; ``MAX_SCRAPES`` at once."""
        runtime = self.runtime
        if not token_ok(request, runtime.viewer_tokens):
            return unauthorized(runtime, request, "http", "viewer")
        if not await self.scrapes.acquire():
            return self.gate_full(request, self.scrapes, "scrapes of /metrics", "scrape_limit")
        try:
            return await self._metrics(request)
        finally:
            self.scrapes.release()

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        runtime = self.runtime
        # The copy is taken here, on the loop; building and formatting (~1 s at 10,000 nodes) run in a thread.
        gate = self.listings
        snapshot = take_snapshot(
            runtime.cache,
            runtime.stats,
            runtime.alerts.service,
            runtime.details,
            fanout=fanout_health(runtime),
            listings=ListingCounts(active=gate.active, refused=gate.refused, cut=gate.cut),
            store=None if runtime.store is None else runtime.store.health(),
        )
        body = await asyncio.to_thread(render_metrics, snapshot)
        return await body_response(request, self.scrapes, body, CONTENT_TYPE_PLAIN_0_0_4)

    async def api_not_found(self, request: web.Request) -> web.Response:
        """Any other ``/api/`` path: a JSON 404 that lists the endpoints that do exist."""
        body = {"error": "not_found", "detail": f"no endpoint at {request.path[:200]!r}", "endpoints": list(ENDPOINTS)}
        return web.json_response(body, status=404)
