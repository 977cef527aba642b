"""The collector's aiohttp shell: ingest and subscribe websockets, the JSON API and /metrics.

Each handler is thin: receive, decode (``shared.codec``), apply to the pure
``NodeCache``, publish the change to subscribers' ``PendingUpdates``. Two
background tasks live in ``cleanup_ctx``: the liveness task, which sleeps
until the cache's next due transition (not a periodic sweep), and the
event-loop lag probe. Every websocket is tracked and closed with 1001 in
``on_shutdown``.

Not here: argument parsing, TLS contexts, signals (``collector.cli``) and the
liveness rules themselves (``collector.cache``).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from collector.acks import AckPacer
from collector.cache import STATES, Change, ChangeKind, NodeCache
from collector.config import CollectorConfig
from collector.fanout import PendingUpdates
from collector.history import HistoryRing
from collector.meters import LagMeter, RateMeter
from collector.metrics import CollectorStats, render_metrics, take_snapshot
from shared import __version__
from shared.codec import INGEST_LIMITS, SUBSCRIBE_REQUEST_LIMITS, decode, decode_json, encode, encode_json
from shared.errors import CloseCode, ErrorReason, ProtocolError
from shared.limits import PROTOCOL_VERSION
from shared.messages import (
    Error,
    Heartbeat,
    Hello,
    HistoryRequest,
    Message,
    NodeHistory,
    NodeState,
)

log = logging.getLogger("nodewatch.collector")

Clock = Callable[[], float]

ENDPOINTS = (
    "GET /api/v1/health",
    "GET /api/v1/nodes[?state=online|stale|offline]",
    "GET /api/v1/nodes/{node_id}",
    "GET /api/v1/ingest (websocket, agents)",
    "GET /api/v1/subscribe[?format=json] (websocket, viewers)",
    "GET /metrics",
)
# A viewer asking for more histories than this before we sent the first ones is flooding; extra requests are dropped.
MAX_PENDING_HISTORY_REQUESTS = 64
# Liveness passes run at most this often; well under the 100 ms flush, so no viewer can tell.
LIVENESS_TICK_S = 0.05
# Below asyncio's default low-water mark (64 KiB / 4) a transport is never paused, so an ack cannot block.
ACK_FAST_PATH_BYTES = 16 * 1024
# At most one "connection limit reached" warning per this many seconds (thousands per second otherwise).
BUSY_LOG_INTERVAL_S = 10.0
# Close-frame messages are capped at 123 bytes by RFC 6455 section 5.5; our reasons are short ASCII.
SHUTDOWN_REASON = b"collector shutting down"


@dataclass(eq=False, slots=True)
class Subscriber:
    """One viewer connection: its websocket, what it has not been sent yet, and its wake-up event."""

    ws: web.WebSocketResponse
    peer: str
    json_format: bool
    pending: PendingUpdates = field(default_factory=PendingUpdates)
    history_requests: dict[str, None] = field(default_factory=dict)  # an ordered set
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class CollectorRuntime:
    """Everything one running collector holds; built by ``create_app``, stored under ``RUNTIME_KEY``."""

    def __init__(self, config: CollectorConfig, clock: Clock, wall_clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.cache = NodeCache(
            forget_after_s=config.forget_after_s,
            max_nodes=config.max_nodes,
            history_window_s=config.history_window_s,
            history_max_points=config.history_max_points,
        )
        self.stats = CollectorStats()
        self.ingest_rate = RateMeter()
        self.lag = LagMeter()
        self.subscribers: set[Subscriber] = set()
        self.agents: dict[int, tuple[web.WebSocketResponse, web.Request]] = {}
        self.websockets: dict[web.WebSocketResponse, web.Request] = {}
        self.started_at = wall_clock()
        self.started_mono = clock()
        self._conn_ids = itertools.count(1)
        self._agent_tokens = [t.encode() for t in config.agent_tokens]
        self._viewer_tokens = [t.encode() for t in config.viewer_tokens]
        self._liveness_wake = asyncio.Event()
        self._liveness_target = math.inf
        self._busy_refused = 0  # connection-limit 503s since the last warning about them
        self._busy_logged_at = -math.inf

    # ---- fan-out -------------------------------------------------------------------------

    def publish(self, changes: list[Change]) -> None:
        """Merge ``changes`` into every subscriber's buffer; never awaits, so ingest never waits on a viewer."""
        if not changes:
            return
        for sub in self.subscribers:
            self.stats.updates_coalesced += sub.pending.add(changes)
            sub.wake.set()
        due = self.cache.next_due()
        if due is not None and due < self._liveness_target:
            self._liveness_wake.set()

    # ---- background tasks ----------------------------------------------------------------

    async def liveness_loop(self) -> None:
        """Apply transitions when they fall due: sleep exactly until the next one, or until poked."""
        while True:
            changes = self.cache.expire(self.clock(), self.wall_clock())
            self.drop_offline_agents(changes)
            self.publish(changes)
            due = self.cache.next_due()
            self._liveness_target = math.inf if due is None else due
            self._liveness_wake.clear()
            # At least LIVENESS_TICK_S between passes: with thousands of nodes some entry is
            # always nearly due (heartbeats re-arm them lazily), and one wake-up per entry cost ~4 %
            # of a core at 5,000 nodes. Transitions are still stamped with their due time.
            delay_s = None if due is None else max(LIVENESS_TICK_S, due - self.clock())
            with suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._liveness_wake.wait()

    def drop_offline_agents(self, changes: list[Change]) -> None:
        """Abort the connection of every node that just went offline while still connected.

        Ten intervals without a heartbeat on an open socket mean a dead peer or a
        half-open connection (the collector does not ping agents); the agent, if
        alive, reconnects and replays its backlog.
        """
        for change in changes:
            record = self.cache.get(change.node_id)
            if record is None or record.state != "offline" or record.conn is None:
                continue
            held = self.agents.get(record.conn)
            if held is not None and held[1].transport is not None:
                log.info("ingest %s: node %r offline; dropping its silent connection", held[1].remote, change.node_id)
                held[1].transport.abort()

    def poke_liveness(self) -> None:
        """Make the liveness task re-read the clock now (for callers that move an injected clock)."""
        self._liveness_wake.set()

    async def lag_loop(self) -> None:
        """Measure how late a short sleep wakes up: the event loop's lag."""
        loop = asyncio.get_running_loop()
        interval_s = self.config.lag_probe_interval_s
        while True:
            start = loop.time()
            await asyncio.sleep(interval_s)
            woke = loop.time()
            self.lag.record(woke, woke - start - interval_s)

    # ---- auth ------------------------------------------------------------------------------

    @staticmethod
    def _token_ok(request: web.Request, tokens: list[bytes]) -> bool:
        if not tokens:
            return True
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        candidate = presented.strip().encode()
        ok = False
        for token in tokens:  # no early exit: every token is compared, in constant time each
            ok |= hmac.compare_digest(candidate, token)
        return ok and scheme.lower() == "bearer"

    def _unauthorized(self, request: web.Request, endpoint: str, kind: str) -> web.Response:
        self.stats.auth_failures[endpoint] += 1
        log.warning("%s %s: refused with 401: missing or wrong %s token", endpoint, request.remote, kind)
        return web.json_response(
            {"error": "unauthorized", "detail": f"expected 'Authorization: Bearer <{kind} token>'"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="nodewatch"'},
        )

    def refused_busy(self) -> None:
        """Count an ingest connection sent away with 503 at accept time; warn at most every few seconds."""
        self.stats.protocol_errors[("ingest", "connection_limit")] += 1
        self._busy_refused += 1
        now = self.clock()
        if now - self._busy_logged_at >= BUSY_LOG_INTERVAL_S:
            log.warning(
                "ingest: refusing new connections with 503: over --max-nodes + %d connections open "
                "(%d refused since the last such line)",
                self.config.connection_margin,
                self._busy_refused,
            )
            self._busy_logged_at = now
            self._busy_refused = 0

    # ---- websocket plumbing ----------------------------------------------------------------

    @contextmanager
    def _tracked(self, ws: web.WebSocketResponse, request: web.Request, endpoint: str) -> Iterator[None]:
        self.websockets[ws] = request
        self.stats.connections_total[endpoint] += 1
        self.stats.connections_active[endpoint] += 1
        try:
            yield
        finally:
            self.stats.connections_active[endpoint] -= 1
            del self.websockets[ws]
            _disarm_heartbeat(ws)

    async def close_ws(self, ws: web.WebSocketResponse, code: int, reason: bytes) -> None:
        """Close politely within ``close_timeout_s``; a peer that does not read gets its transport aborted."""
        try:
            async with asyncio.timeout(self.config.close_timeout_s):
                await ws.close(code=code, message=reason)
        except (TimeoutError, ConnectionError):
            self._abort(ws)

    def _abort(self, ws: web.WebSocketResponse) -> None:
        request = self.websockets.get(ws)
        transport = request.transport if request is not None else None
        if transport is not None:
            transport.abort()

    async def _reject(
        self, ws: web.WebSocketResponse, peer: str, endpoint: str, exc: ProtocolError, *, text: bool
    ) -> None:
        """One log line, one counter, an Error frame, then the reason's close code."""
        log.warning("%s %s: closing with %d %s: %.200r", endpoint, peer, exc.close_code, exc.reason, exc.detail)
        self.stats.protocol_errors[(endpoint, exc.reason.value)] += 1
        error = Error(reason=exc.reason.value, detail=exc.detail[:1024])
        with suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.config.close_timeout_s):
                if text:
                    await ws.send_str(encode_json(error))
                else:
                    await ws.send_bytes(encode(error))
        await self.close_ws(ws, exc.close_code, exc.reason.value.encode())

    def _count_transport_error(self, endpoint: str, msg: Any) -> None:
        """aiohttp already closed the socket (1009 for an over-cap frame); count it by our reason."""
        code = getattr(msg.data, "code", None)
        reason = ErrorReason.FRAME_TOO_LARGE if code == WSCloseCode.MESSAGE_TOO_BIG else ErrorReason.MALFORMED_MSGPACK
        if code is not None:
            self.stats.protocol_errors[(endpoint, reason.value)] += 1
            log.warning("%s: closed by the websocket layer with %s: %.200r", endpoint, code, msg.data)

    # ---- ingest ----------------------------------------------------------------------------

    async def ingest(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/ingest``: one agent's hello, then its heartbeats, each acked cumulatively."""
        if not self._token_ok(request, self._agent_tokens):
            return self._unauthorized(request, "ingest", "agent")
        cfg = self.config
        ws = web.WebSocketResponse(
            # No pings: aiohttp re-arms its ping timer on every frame received (~5 % of the
            # collector's CPU at 1 Hz per node), and heartbeats already prove the agent alive.
            # A dead agent connection is dropped when its node goes offline (drop_offline_agents).
            heartbeat=None,
            max_msg_size=cfg.ingest_max_msg_bytes,
            compress=False,
            timeout=cfg.close_timeout_s,
        )
        if not await _prepared(ws, request):
            return _peer_gone()
        peer = str(request.remote)
        conn = next(self._conn_ids)
        node_id: str | None = None
        clean = False
        with self._tracked(ws, request, "ingest"):
            try:
                hello = await self._receive_hello(ws)
                if hello is None:
                    return ws
                result = self.cache.hello(hello, conn, self.clock(), self.wall_clock())
                node_id = hello.node_id
                if result.replaced_conn is not None and result.replaced_conn in self.agents:
                    # The agent reconnected, so its old socket is half-open: abort it, no close handshake to wait for.
                    _, old_request = self.agents[result.replaced_conn]
                    log.info("ingest %s: node %r reconnected; dropping its old connection", peer, node_id)
                    if old_request.transport is not None:
                        old_request.transport.abort()
                self.agents[conn] = (ws, request)
                log.info(
                    "ingest %s: hello from node %r (instance %r), ack %d",
                    peer,
                    node_id,
                    hello.agent_instance_id,
                    result.ack_seq,
                )
                self.publish(result.changes)
                await self._send_ack(ws, request.transport, result.ack_seq)
                pacer = AckPacer(hello.ack_every, self.config.ack_interval_s, self.clock())
                clean = await self._heartbeat_loop(ws, request.transport, node_id, conn, pacer)
            except ProtocolError as exc:
                await self._reject(ws, peer, "ingest", exc, text=False)
            finally:
                self.agents.pop(conn, None)
                if node_id is not None:
                    self.publish(self.cache.close(node_id, conn, clean=clean, now=self.clock(), wall=self.wall_clock()))
        return ws

    async def _receive_hello(self, ws: web.WebSocketResponse) -> Hello | None:
        try:
            async with asyncio.timeout(self.config.hello_timeout_s):
                msg = await ws.receive()
        except TimeoutError:
            raise ProtocolError(
                ErrorReason.HELLO_TIMEOUT, f"expected a hello within {self.config.hello_timeout_s:g} s, got nothing"
            ) from None
        message = self._decode_ingest(msg)
        if message is None:
            return None
        if not isinstance(message, Hello):
            raise ProtocolError(ErrorReason.UNEXPECTED_MESSAGE, f"expected a hello first, got {message.type!r}")
        return message

    def _decode_ingest(self, msg: Any) -> Message | None:
        """The message in an ingest frame, None when the connection ended, ProtocolError for bad input."""
        if msg.type is WSMsgType.BINARY:
            return decode(msg.data, INGEST_LIMITS)
        if msg.type is WSMsgType.TEXT:
            raise ProtocolError(ErrorReason.TEXT_FRAME, f"expected binary msgpack frames, got text {msg.data[:40]!r}")
        if msg.type is WSMsgType.ERROR:
            self._count_transport_error("ingest", msg)
        return None

    async def _heartbeat_loop(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        node_id: str,
        conn: int,
        pacer: AckPacer,
    ) -> bool:
        """Apply heartbeats, acking as ``pacer`` says, until the connection ends; True on a clean close (1000)."""
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.CLOSE:
                return bool(msg.data == WSCloseCode.OK)
            message = self._decode_ingest(msg)
            if message is None:
                return False
            if not isinstance(message, Heartbeat):
                raise ProtocolError(ErrorReason.UNEXPECTED_MESSAGE, f"expected a heartbeat, got {message.type!r}")
            now = self.clock()
            # msg.data is the frame `message` was validated from: subscribers get those bytes as they are.
            result = self.cache.heartbeat(node_id, conn, message, now, self.wall_clock(), frame=msg.data)
            if not result.current:
                return False
            self.stats.heartbeats_received += 1
            self.stats.heartbeats_duplicate += result.duplicate
            self.ingest_rate.record(now)
            self.publish(result.changes)
            if pacer.due(now):
                await self._send_ack(ws, transport, result.ack_seq)

    async def _send_ack(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None, seq: int) -> None:
        # A send that cannot finish means the agent stopped reading; only this agent's handler waits on it.
        try:
            if isinstance(transport, asyncio.WriteTransport) and _buffered(transport) < ACK_FAST_PATH_BYTES:
                # Fast path (this runs once per heartbeat): below the low-water mark the transport
                # is not paused and a ~20-byte ack cannot pause it, so send_bytes will not wait and
                # needs no timeout (an asyncio.timeout costs a timer per ack).
                await ws.send_bytes(ack_frame(seq))
                return
            async with asyncio.timeout(self.config.send_timeout_s):
                await ws.send_bytes(ack_frame(seq))
        except TimeoutError:
            self._abort(ws)
        except ConnectionError:
            # The agent went away between its heartbeat and our ack (aiohttp raises
            # ClientConnectionResetError, a ConnectionResetError); the next receive() ends the loop.
            return

    # ---- subscribe -------------------------------------------------------------------------

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/subscribe``: a snapshot, then batched updates; answers history requests."""
        if not self._token_ok(request, self._viewer_tokens):
            return self._unauthorized(request, "subscribe", "viewer")
        fmt = request.query.get("format", "msgpack")
        if fmt not in {"msgpack", "json"}:
            return _json_error(400, "bad_request", f"expected format=msgpack or format=json, got {fmt[:40]!r}")
        cfg = self.config
        ws = web.WebSocketResponse(
            heartbeat=cfg.ws_heartbeat_s,
            max_msg_size=cfg.subscribe_max_msg_bytes,
            compress=False,
            timeout=cfg.close_timeout_s,
        )
        if not await _prepared(ws, request):
            return _peer_gone()
        sub = Subscriber(ws=ws, peer=str(request.remote), json_format=fmt == "json")
        with self._tracked(ws, request, "subscribe"):
            # Snapshot and registration happen with no await between them, so no change is lost or doubled.
            first: bytes | str
            if sub.json_format:
                first = encode_json(self.cache.snapshot(self.wall_clock(), cfg.snapshot_history_points))
            else:
                first = self.cache.snapshot_frame(self.wall_clock(), cfg.snapshot_history_points)
            self.subscribers.add(sub)
            try:
                async with asyncio.TaskGroup() as tg:
                    sender = tg.create_task(self._send_loop(sub, first))
                    try:
                        await self._subscriber_receive_loop(sub)
                    finally:
                        sender.cancel()
            finally:
                self.subscribers.discard(sub)
                self.stats.updates_dropped += len(sub.pending)
        return ws

    async def _subscriber_receive_loop(self, sub: Subscriber) -> None:
        try:
            while (request := self._decode_request(sub, await sub.ws.receive())) is not None:
                if len(sub.history_requests) < MAX_PENDING_HISTORY_REQUESTS:
                    sub.history_requests[request.node_id] = None
                    sub.wake.set()
        except ProtocolError as exc:
            await self._reject(sub.ws, sub.peer, "subscribe", exc, text=sub.json_format)

    def _decode_request(self, sub: Subscriber, msg: Any) -> HistoryRequest | None:
        """The viewer's request in a frame, None when the connection ended, ProtocolError for bad input."""
        if msg.type is WSMsgType.BINARY:
            message = decode(msg.data, SUBSCRIBE_REQUEST_LIMITS)
        elif msg.type is WSMsgType.TEXT and sub.json_format:
            message = decode_json(msg.data, SUBSCRIBE_REQUEST_LIMITS)
        elif msg.type is WSMsgType.TEXT:
            raise ProtocolError(
                ErrorReason.TEXT_FRAME, f"expected binary frames (or ?format=json), got text {msg.data[:40]!r}"
            )
        else:
            if msg.type is WSMsgType.ERROR:
                self._count_transport_error("subscribe", msg)
            return None
        if not isinstance(message, HistoryRequest):
            raise ProtocolError(ErrorReason.UNEXPECTED_MESSAGE, f"expected a history_request, got {message.type!r}")
        return message

    async def _send_loop(self, sub: Subscriber, snapshot: bytes | str) -> None:
        """Send the snapshot, then at most one Update per flush interval; close 4429 if a send times out."""
        loop = asyncio.get_running_loop()
        try:
            await self._send_frame(sub, snapshot)
            last_flush = loop.time()
            while True:
                await sub.wake.wait()
                delay_s = last_flush + self.config.flush_interval_s - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                sub.wake.clear()
                while sub.history_requests:
                    node_id = next(iter(sub.history_requests))
                    del sub.history_requests[node_id]
                    record = self.cache.get(node_id)
                    history = record.history.to_history() if record is not None else HistoryRing(1).to_history()
                    await self._send(sub, NodeHistory(node_id=node_id, history=history))
                update: bytes | str | None
                if sub.json_format:
                    model = sub.pending.take_update(self.cache, self.wall_clock())
                    update = None if model is None else encode_json(model)
                else:
                    update = sub.pending.take_frame(self.cache, self.wall_clock())
                if update is not None:
                    await self._send_frame(sub, update)
                    self.stats.updates_sent += 1
                last_flush = loop.time()
        except TimeoutError:
            reason = ErrorReason.SUBSCRIBER_TOO_SLOW
            self.stats.protocol_errors[("subscribe", reason.value)] += 1
            log.warning(
                "subscribe %s: closing with %d %s: a send took over %g s",
                sub.peer,
                CloseCode.SUBSCRIBER_TOO_SLOW,
                reason,
                self.config.send_timeout_s,
            )
            self.subscribers.discard(sub)
            await self.close_ws(sub.ws, CloseCode.SUBSCRIBER_TOO_SLOW, reason.value.encode())
            self._abort(sub.ws)
        except ConnectionError:
            return

    async def _send(self, sub: Subscriber, message: Message) -> None:
        await self._send_frame(sub, encode_json(message) if sub.json_format else encode(message))

    async def _send_frame(self, sub: Subscriber, frame: bytes | str) -> None:
        async with asyncio.timeout(self.config.send_timeout_s):
            if isinstance(frame, str):
                await sub.ws.send_str(frame)
            else:
                await sub.ws.send_bytes(frame)

    # ---- HTTP ------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        """``GET /api/v1/health``: counts only, open without a token; 503 when the event loop lags."""
        now = self.clock()
        loop_now = asyncio.get_running_loop().time()
        nodes: dict[str, int] = {"total": len(self.cache)}
        nodes.update(self.cache.counts())
        lag_max_s = self.lag.max_s(loop_now)
        healthy = lag_max_s <= self.config.lag_unhealthy_s
        body = {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "started_at": self.started_at,
            "uptime_s": round(now - self.started_mono, 3),
            "nodes": nodes,
            "agents_connected": len(self.agents),
            "subscribers": len(self.subscribers),
            "ingest_heartbeats_per_s": self.ingest_rate.rate_per_s(now),
            "heartbeats_received": self.stats.heartbeats_received,
            "event_loop_lag_ms": round(self.lag.last_s * 1000, 3),
            "event_loop_lag_max_ms": round(lag_max_s * 1000, 3),
        }
        return web.json_response(body, status=200 if healthy else 503)

    async def nodes(self, request: web.Request) -> web.Response:
        """``GET /api/v1/nodes[?state=]``: every node's status, facts and last sample."""
        if not self._token_ok(request, self._viewer_tokens):
            return self._unauthorized(request, "http", "viewer")
        wanted = request.query.get("state")
        state: NodeState | None = next((s for s in STATES if s == wanted), None)
        if wanted is not None and state is None:
            return _json_error(400, "bad_request", f"expected state=online|stale|offline, got {wanted[:40]!r}")
        kind = ChangeKind.FACTS | ChangeKind.SAMPLE
        records = self.cache.nodes(state)
        entries = [r.entry(kind).model_dump(mode="json", exclude_none=True) for r in records]
        return web.json_response({"server_time_at": self.wall_clock(), "nodes": entries})

    async def node(self, request: web.Request) -> web.Response:
        """``GET /api/v1/nodes/{node_id}``: one node with its full history."""
        if not self._token_ok(request, self._viewer_tokens):
            return self._unauthorized(request, "http", "viewer")
        node_id = request.match_info["node_id"]
        record = self.cache.get(node_id)
        if record is None:
            return _json_error(404, "not_found", f"expected a known node id, got {node_id[:128]!r}")
        entry = record.entry(ChangeKind.FACTS | ChangeKind.SAMPLE, record.history.to_history())
        return web.json_response(
            {"server_time_at": self.wall_clock(), **entry.model_dump(mode="json", exclude_none=True)}
        )

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus text exposition, built at scrape time."""
        if not self._token_ok(request, self._viewer_tokens):
            return self._unauthorized(request, "http", "viewer")
        # The copy is taken here, on the loop; building and formatting (~1 s at 10,000 nodes) run in a thread.
        body = await asyncio.to_thread(render_metrics, take_snapshot(self.cache, self.stats))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def api_not_found(self, request: web.Request) -> web.Response:
        """Any other ``/api/`` path: a JSON 404 that lists the endpoints that do exist."""
        body = {"error": "not_found", "detail": f"no endpoint at {request.path[:200]!r}", "endpoints": list(ENDPOINTS)}
        return web.json_response(body, status=404)

    # ---- lifecycle -------------------------------------------------------------------------

    async def background(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: run the liveness and lag tasks for the app's lifetime, then cancel and await them."""
        tasks = [asyncio.create_task(self.liveness_loop()), asyncio.create_task(self.lag_loop())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def shutdown(self, app: web.Application) -> None:
        """on_shutdown: close every websocket with 1001, all in parallel, each bounded by close_timeout_s."""
        self.subscribers.clear()  # nothing more is published to them; their handlers count what was dropped
        await asyncio.gather(
            *(self.close_ws(ws, WSCloseCode.GOING_AWAY, SHUTDOWN_REASON) for ws in list(self.websockets)),
            return_exceptions=True,
        )


def ack_frame(seq: int) -> bytes:
    """The bytes of ``encode(Ack(seq=seq))``, packed directly: it is sent once per heartbeat, the hottest path."""
    frame: bytes = msgpack.packb({"type": "ack", "seq": seq})
    return frame


async def _prepared(ws: web.WebSocketResponse, request: web.Request) -> bool:
    """Send the 101; False if the peer hung up first (agents give up on a collector slow to answer)."""
    try:
        await ws.prepare(request)
    except ConnectionError:
        log.debug("%s: the peer left before the websocket handshake finished", request.remote)
        return False
    return True


def _disarm_heartbeat(ws: web.WebSocketResponse) -> None:
    """Cancel the websocket's ping timer once its handler is done.

    aiohttp 3.14 can leave a closed WebSocketResponse's heartbeat timer scheduled
    (``ws_heartbeat_s`` ahead), and that timer holds the request, its handler and
    its transport. At thousands of 4503 refusals per second that kept ~100,000 dead
    connections alive and a collector under a 256 MiB limit died of MemoryError.
    """
    ws._cancel_heartbeat()


def _peer_gone() -> web.Response:
    # Never delivered: aiohttp's writer raises ConnectionError on the closed transport and
    # handles it quietly, instead of logging a 500 traceback per impatient client.
    return web.Response(status=400)


def _buffered(transport: asyncio.WriteTransport) -> int:
    return transport.get_write_buffer_size()


def _json_error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


RUNTIME_KEY = web.AppKey("nodewatch_collector", CollectorRuntime)


def create_app(
    config: CollectorConfig | None = None,
    *,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
) -> web.Application:
    """Build the collector's aiohttp application; ``clock`` judges liveness, ``wall_clock`` stamps ``*_at``."""
    runtime = CollectorRuntime(config or CollectorConfig(), clock, wall_clock)
    app = web.Application()
    app[RUNTIME_KEY] = runtime
    app.router.add_get("/api/v1/health", runtime.health)
    app.router.add_get("/api/v1/nodes", runtime.nodes)
    app.router.add_get("/api/v1/nodes/{node_id}", runtime.node)
    app.router.add_get("/api/v1/ingest", runtime.ingest)
    app.router.add_get("/api/v1/subscribe", runtime.subscribe)
    app.router.add_get("/metrics", runtime.metrics)
    app.router.add_route("*", "/api/{tail:.*}", runtime.api_not_found)
    app.cleanup_ctx.append(runtime.background)
    app.on_shutdown.append(runtime.shutdown)
    return app
