"""``GET /api/v1/subscribe``: one viewer's snapshot, its batched updates and its history requests.

A ``history_request`` without a range is answered from the node's in-memory window, as in
version 1. One with ``from_at``/``to_at``/``step_s`` gets the tiered answer of the HTTP history
API in ``NodeHistory.range`` (``collector.history_query``): the store is read in a worker thread,
and a viewer's ranged requests are paced by ``RangeRequests`` (2/s, 10 in a row): one over the
budget stays pending and is answered when a token is back, never refused. Pending requests are
one per node and kind, the newest winning, at most ``MAX_PENDING_HISTORY_REQUESTS``.

Each subscriber has a ``PendingUpdates`` buffer that ingest merges changes
into without waiting (``CollectorRuntime.publish``), and a send loop that
drains it into at most one update per flush interval. A viewer that cannot
take a frame within ``send_timeout_s`` is closed with 4429; nobody else waits
for it (websockets' broadcast notes make the same choice).

With ``?alerts=1`` the viewer also gets every live alert after the snapshot (``alerts``)
and the alert transitions since its last flush (``alert``), queued by ``collector.alerting``.

An unexpected exception on one subscriber closes that subscriber with 1011
``internal``, counted and logged in one line; other viewers do not notice.

Not here: what changed (``collector.cache``), how frames are packed
(``collector.wire``), auth (``collector.http_api.token_ok``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from collector import wire
from collector.fanout import PendingUpdates
from collector.history import HistoryRing
from collector.history_query import RangeRequests, query_range, range_map, resolve_range
from collector.http_api import json_error, token_ok, unauthorized, upgrade
from collector.runtime import CollectorRuntime
from shared.codec import SUBSCRIBE_REQUEST_LIMITS, decode, decode_json, encode, encode_json
from shared.errors import CloseCode, ErrorReason, ProtocolError
from shared.messages import HistoryRequest, Message, NodeHistory

log = logging.getLogger("nodewatch.collector")

# A viewer asking for more histories than this before we sent the first ones is flooding; extra requests are dropped.
# (A request for a node and kind already pending replaces it instead: the newest range is the one a chart wants.)
MAX_PENDING_HISTORY_REQUESTS = 64

# Pending requests are keyed by node id and whether they ask for a range: one of each kind per node.
RequestKey = tuple[str, bool]
# Alert transitions a subscriber may have waiting: one mass outage of the largest fleet (10,000 nodes),
# the most one flush can carry (MAX_NODES_PER_MESSAGE); older ones give way (the viewer can ask the API).
MAX_PENDING_ALERTS = 10_000


@dataclass(eq=False, slots=True)
class Subscriber:
    """One viewer connection: its websocket, what it has not been sent yet, and its wake-up event."""

    ws: web.WebSocketResponse
    peer: str
    json_format: bool
    range_requests: RangeRequests
    pending: PendingUpdates = field(default_factory=PendingUpdates)
    history_requests: dict[RequestKey, HistoryRequest] = field(default_factory=dict)  # oldest first
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    rewake: asyncio.TimerHandle | None = None  # wakes the send loop when a paced range request may go
    alerts: bool = False  # ?alerts=1: also the ``alerts`` and ``alert`` messages (docs/protocol.md 5.11)
    # Alert transitions not sent yet; bounded so a viewer that stalls cannot grow it without end.
    pending_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_ALERTS))


async def handle_subscribe(runtime: CollectorRuntime, request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/subscribe``: a snapshot, then batched updates; answers history requests."""
    if not token_ok(request, runtime.viewer_tokens):
        return unauthorized(runtime, request, "subscribe", "viewer")
    fmt = request.query.get("format", "msgpack")
    if fmt not in {"msgpack", "json"}:
        return json_error(400, "bad_request", f"expected format=msgpack or format=json, got {fmt[:40]!r}")
    alerts = request.query.get("alerts", "0")
    if alerts not in {"0", "1"}:
        return json_error(400, "bad_request", f"expected alerts=0 or alerts=1, got {alerts[:40]!r}")
    cfg = runtime.config
    ws = await upgrade(
        request,
        heartbeat_s=cfg.ws_heartbeat_s,
        max_msg_bytes=cfg.subscribe_max_msg_bytes,
        close_timeout_s=cfg.close_timeout_s,
    )
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    sub = Subscriber(
        ws=ws,
        peer=str(request.remote),
        json_format=fmt == "json",
        range_requests=RangeRequests(runtime.clock()),
        alerts=alerts == "1",
    )
    with runtime.tracked(ws, request, "subscribe"):
        try:
            await _serve(runtime, sub)
        except Exception as exc:  # noqa: BLE001 - a bug of ours costs this one viewer a 1011, never the collector
            runtime.subscribers.discard(sub)
            runtime.internal_error("subscribe", sub.peer, exc)
            detail = "expected to serve this viewer, got an internal error in the collector"
            await runtime.send_error_and_close(ws, ProtocolError(ErrorReason.INTERNAL, detail), text=sub.json_format)
    return ws


async def _serve(runtime: CollectorRuntime, sub: Subscriber) -> None:
    # Snapshot and registration happen with no await between them, so no change is lost or doubled.
    cfg = runtime.config
    first: bytes | str
    if sub.json_format:
        first = encode_json(wire.snapshot(runtime.cache, runtime.wall_clock(), cfg.snapshot_history_points))
    else:
        first = wire.snapshot_frame(runtime.cache, runtime.wall_clock(), cfg.snapshot_history_points)
    frames: list[bytes | str] = [first]
    if sub.alerts:  # every live alert after the snapshot; transitions follow as ``alert`` messages
        frames += wire.alerts_frames(
            runtime.wall_clock(), runtime.alerts.service.api_alerts()["alerts"], sub.json_format
        )
    runtime.subscribers.add(sub)
    try:
        async with asyncio.TaskGroup() as tg:
            sender = tg.create_task(_send_loop(runtime, sub, frames))
            try:
                await _receive_loop(runtime, sub)
            finally:
                sender.cancel()
    finally:
        if sub.rewake is not None:
            sub.rewake.cancel()
        runtime.subscribers.discard(sub)
        runtime.stats.updates_dropped += len(sub.pending)


async def _receive_loop(runtime: CollectorRuntime, sub: Subscriber) -> None:
    try:
        while (request := _decode_request(runtime, sub, await sub.ws.receive())) is not None:
            key = (request.node_id, request.ranged)
            if key in sub.history_requests or len(sub.history_requests) < MAX_PENDING_HISTORY_REQUESTS:
                sub.history_requests[key] = request
                sub.wake.set()
    except ProtocolError as exc:
        await runtime.reject(sub.ws, sub.peer, "subscribe", exc, text=sub.json_format)


def _decode_request(runtime: CollectorRuntime, sub: Subscriber, msg: WSMessage) -> HistoryRequest | None:
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
            runtime.count_transport_error("subscribe", msg)
        return None
    if not isinstance(message, HistoryRequest):
        raise ProtocolError(ErrorReason.UNEXPECTED_MESSAGE, f"expected a history_request, got {message.type!r}")
    return message


async def _send_loop(runtime: CollectorRuntime, sub: Subscriber, first: list[bytes | str]) -> None:
    """Send the snapshot (and live alerts), then at most one Update per flush interval; 4429 if a send times out."""
    loop = asyncio.get_running_loop()
    cfg = runtime.config
    try:
        for frame in first:
            await _send_frame(runtime, sub, frame)
        last_flush = loop.time()
        while True:
            await sub.wake.wait()
            delay_s = last_flush + cfg.flush_interval_s - loop.time()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            sub.wake.clear()
            await _answer_history_requests(runtime, sub)
            update: bytes | str | None
            if sub.json_format:
                model = sub.pending.take_update(runtime.cache, runtime.wall_clock())
                update = None if model is None else encode_json(model)
            else:
                update = sub.pending.take_frame(runtime.cache, runtime.wall_clock())
            if update is not None:
                await _send_frame(runtime, sub, update)
                runtime.stats.updates_sent += 1
            while sub.pending_alerts:
                await _send_frame(runtime, sub, _take_alerts(runtime, sub))
            last_flush = loop.time()
    except TimeoutError:
        reason = ErrorReason.SUBSCRIBER_TOO_SLOW
        detail = f"expected each send to finish within {cfg.send_timeout_s:g} s, got one that did not"
        runtime.count_close("subscribe", sub.peer, CloseCode.SUBSCRIBER_TOO_SLOW, reason.value, detail)
        runtime.subscribers.discard(sub)
        await runtime.close_ws(sub.ws, CloseCode.SUBSCRIBER_TOO_SLOW, reason.value.encode())
        runtime.abort(sub.ws)
    except ConnectionError:
        return


async def _answer_history_requests(runtime: CollectorRuntime, sub: Subscriber) -> None:
    """Answer every pending request, oldest first; a ranged one over budget waits for its token."""
    for key in list(sub.history_requests):
        request = sub.history_requests.get(key)
        if request is None:
            continue
        if request.ranged and not sub.range_requests.take(runtime.clock()):
            continue  # stays pending: _rewake brings the send loop back once a token is there
        del sub.history_requests[key]  # before any await: a newer request for the key is kept
        if request.ranged:
            await _send_frame(runtime, sub, await _range_frame(runtime, sub, request))
        else:
            record = runtime.cache.get(request.node_id)
            history = record.history.to_history() if record is not None else HistoryRing(1).to_history()
            await _send(runtime, sub, NodeHistory(node_id=request.node_id, history=history))
    _rewake(runtime, sub)


async def _range_frame(runtime: CollectorRuntime, sub: Subscriber, request: HistoryRequest) -> bytes | str:
    """The tiered answer as one frame: the store is read and the frame built in worker threads."""
    wall = runtime.wall_clock()
    from_at, to_at, step_s = resolve_range(request.from_at, request.to_at, request.step_s, wall)
    result = await query_range(runtime, request.node_id, from_at, to_at, step_s)
    answer = range_map(result, wall, from_at, to_at)
    return await asyncio.to_thread(wire.range_history_frame, request.node_id, answer, sub.json_format)


def _rewake(runtime: CollectorRuntime, sub: Subscriber) -> None:
    """Wake the send loop when the next paced range request may be answered (if one is pending)."""
    if sub.rewake is not None:
        sub.rewake.cancel()
        sub.rewake = None
    if any(ranged for _, ranged in sub.history_requests):
        delay_s = sub.range_requests.wait_s(runtime.clock())
        sub.rewake = asyncio.get_running_loop().call_later(delay_s, sub.wake.set)


def _take_alerts(runtime: CollectorRuntime, sub: Subscriber) -> bytes | str:
    """One ``alert`` message with the oldest pending transitions (at most ``MAX_ALERTS_PER_MESSAGE``)."""
    events = [sub.pending_alerts.popleft() for _ in range(min(len(sub.pending_alerts), wire.MAX_ALERTS_PER_MESSAGE))]
    return wire.alert_update_frame(runtime.wall_clock(), events, sub.json_format)


async def _send(runtime: CollectorRuntime, sub: Subscriber, message: Message) -> None:
    await _send_frame(runtime, sub, encode_json(message) if sub.json_format else encode(message))


async def _send_frame(runtime: CollectorRuntime, sub: Subscriber, frame: bytes | str) -> None:
    async with asyncio.timeout(runtime.config.send_timeout_s):
        if isinstance(frame, str):
            await sub.ws.send_str(frame)
        else:
            await sub.ws.send_bytes(frame)
