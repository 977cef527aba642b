"""``GET /api/v1/subscribe``: one viewer's snapshot, its share of the fan-out and its history requests.

The snapshot is sent in bounded parts packed from ``Fanout.snapshots`` (per-node cached parts)
as they go out, then a catch-up of what changed meanwhile, built in the same step as the
subscriber is registered for updates, so no change is lost or goes backwards
(``collector.snapshot``, docs/protocol.md 4.2.1). Updates are packed once per flush for every
subscriber (``collector.fanout``, flushed by ``fanout_loop``) and wait in the subscriber's
``Outbox``; its send loop sends them in order, and to a lagging viewer the latest state of
what it missed (``Fanout.lag_parts``). A viewer that does not read (``max_unsent_bytes`` passed
it), or cannot take a frame within ``send_timeout_s``, is closed with 4429;
nobody waits for it. Past ``--max-subscribers`` a request gets 503.

A ``history_request`` without a range is answered from the node's in-memory window, paced at
``HISTORY_REQUESTS_PER_S``; one with ``from_at``/``to_at``/``step_s`` gets the tiered answer of
the HTTP history API in ``NodeHistory.range`` (``collector.history_query``), read in a worker
thread and paced by ``RangeRequests`` (2/s, 10 in a row); ``collector.history_requests`` answers
both. A request over its pace stays pending and is answered when a token is back, never refused.
Pending requests are one per node and kind, the newest winning, at most ``MAX_PENDING_HISTORY_REQUESTS``.
A viewer sending requests faster than ``REQUESTS_IN_PER_S`` is closed with 4430 ``rate_exceeded``.

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
from collector.fanout import Outbox
from collector.history_query import RangeRequests
from collector.history_requests import (
    HISTORY_REQUEST_BURST,
    HISTORY_REQUESTS_PER_S,
    MAX_PENDING_HISTORY_REQUESTS,
    REQUESTS_IN_BURST,
    REQUESTS_IN_PER_S,
    RequestKey,
    answer,
)
from collector.http_api import json_error, token_ok, unauthorized, upgrade
from collector.runtime import CollectorRuntime
from collector.snapshot import SnapshotSend
from collector.trust.budget import TokenBucket
from shared.codec import SUBSCRIBE_REQUEST_LIMITS, decode, decode_json
from shared.errors import CloseCode, ErrorReason, ProtocolError
from shared.messages import HistoryRequest

log = logging.getLogger("nodewatch.collector")

# Alert transitions a subscriber may have waiting: one mass outage of the largest fleet (10,000 nodes),
# the most one flush can carry (MAX_NODES_PER_MESSAGE); older ones give way (the viewer can ask the API).
MAX_PENDING_ALERTS = 10_000
# A subscriber refused at --max-subscribers may retry after this many seconds (docs/protocol.md 4.2).
FULL_RETRY_AFTER_S = 5


@dataclass(eq=False, slots=True)
class Subscriber:
    """One viewer connection: its websocket, what waits to be sent to it, and its wake-up event."""

    ws: web.WebSocketResponse
    peer: str
    json_format: bool
    outbox: Outbox
    range_requests: RangeRequests
    plain_requests: RangeRequests  # the same pacing, for requests without a range (finding 16a)
    requests_in: TokenBucket  # every request it sends; past it, 4430
    history_requests: dict[RequestKey, HistoryRequest] = field(default_factory=dict)  # oldest first
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    rewake: asyncio.TimerHandle | None = None  # wakes the send loop when a paced request may go
    alerts: bool = False  # ?alerts=1: also the ``alerts`` and ``alert`` messages (docs/protocol.md 5.11)
    # Alert transitions not sent yet; bounded so a viewer that stalls cannot grow it without end.
    pending_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_ALERTS))
    deadline: asyncio.Timeout | None = None  # the send in progress, if any: a cut ends it at once
    over_unsent: int | None = None  # set when its unsent bytes passed the bound: how many there were


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
    fanout = runtime.fanout
    if fanout.admitted >= fanout.limits.max_subscribers:
        return _refuse_full(runtime, request)
    fanout.admitted += 1
    try:
        return await _subscribe(runtime, request, json_format=fmt == "json", alerts=alerts == "1")
    finally:
        fanout.admitted -= 1


def _refuse_full(runtime: CollectorRuntime, request: web.Request) -> web.Response:
    """503 with Retry-After: the collector serves ``--max-subscribers`` viewers already (counted, logged paced)."""
    limit = runtime.fanout.limits.max_subscribers
    runtime.fanout.stats.refused_full += 1
    detail = f"expected at most {limit} subscribers at once (--max-subscribers), got one more"
    runtime.count_close("subscribe", str(request.remote), 503, "subscriber_limit", detail)
    response = json_error(503, "capacity_reached", detail)
    response.headers["Retry-After"] = str(FULL_RETRY_AFTER_S)
    return response


async def _subscribe(
    runtime: CollectorRuntime, request: web.Request, *, json_format: bool, alerts: bool
) -> web.StreamResponse:
    cfg = runtime.config
    ws = await upgrade(
        request,
        heartbeat_s=cfg.ws_heartbeat_s,
        max_msg_bytes=cfg.subscribe_max_msg_bytes,
        close_timeout_s=cfg.close_timeout_s,
    )
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    transport = request.transport
    now = runtime.clock()
    sub = Subscriber(
        ws=ws,
        peer=str(request.remote),
        json_format=json_format,
        outbox=Outbox(
            runtime.fanout.limits.max_unsent_bytes,
            (lambda: 0) if transport is None else transport.get_write_buffer_size,
            runtime.fanout.limits.lag_at(),
        ),
        range_requests=RangeRequests(now),
        plain_requests=RangeRequests(now, HISTORY_REQUESTS_PER_S, HISTORY_REQUEST_BURST),
        requests_in=TokenBucket(REQUESTS_IN_PER_S, REQUESTS_IN_BURST, now),
        alerts=alerts,
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
    fanout = runtime.fanout
    snapshot = SnapshotSend(fanout.snapshots, runtime.cache, fanout.limits.snapshot_parts, json_format=sub.json_format)
    try:
        async with asyncio.TaskGroup() as tg:
            sender = tg.create_task(_send_loop(runtime, sub, snapshot))
            try:
                await _receive_loop(runtime, sub)
            finally:
                sender.cancel()
    finally:
        if sub.rewake is not None:
            sub.rewake.cancel()
        runtime.subscribers.discard(sub)
        runtime.stats.updates_dropped += sub.outbox.clear()


def _register(runtime: CollectorRuntime, sub: Subscriber, snapshot: SnapshotSend) -> list[bytes | str]:
    """Subscribe ``sub`` to the fan-out; return what it must be sent first: the snapshot's catch-up, live alerts.

    No await here: from this instant every change reaches ``sub`` as an update, and the catch-up
    holds every change before it that its parts missed, so nothing is lost or goes backwards.
    """
    wall = runtime.wall_clock()
    frames = snapshot.catch_up(wall)
    if sub.alerts:  # every live alert after the snapshot; transitions follow as ``alert`` messages
        frames += wire.alerts_frames(wall, runtime.alerts.service.api_alerts()["alerts"], sub.json_format)
    runtime.subscribers.add(sub)
    runtime.fanout.last_flush_at = asyncio.get_running_loop().time()  # the snapshot counts as this flush
    return frames


async def _receive_loop(runtime: CollectorRuntime, sub: Subscriber) -> None:
    try:
        while (request := _decode_request(runtime, sub, await sub.ws.receive())) is not None:
            key = (request.node_id, request.ranged)
            if key in sub.history_requests or len(sub.history_requests) < MAX_PENDING_HISTORY_REQUESTS:
                sub.history_requests[key] = request
                sub.wake.set()
    except ProtocolError as exc:
        runtime.subscribers.discard(sub)
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
    if not sub.requests_in.take(runtime.clock()):
        detail = f"expected at most {REQUESTS_IN_PER_S:g} requests/s (bursts of {REQUESTS_IN_BURST}), got more"
        raise ProtocolError(ErrorReason.RATE_EXCEEDED, detail)
    return message


async def _send_loop(runtime: CollectorRuntime, sub: Subscriber, snapshot: SnapshotSend) -> None:
    """The snapshot's parts, its catch-up and live alerts, then queued frames in order (or, lagging, the latest)."""
    try:
        for frame in snapshot.parts(runtime.wall_clock()):  # each part is packed when the previous one went out
            await _send_frame(runtime, sub, frame)
        for frame in _register(runtime, sub, snapshot):
            await _send_frame(runtime, sub, frame)
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            if sub.over_unsent is not None:
                break
            await answer(runtime, sub, lambda frame: _send_frame(runtime, sub, frame))
            while (update := sub.outbox.pop()) is not None:
                await _send_frame(runtime, sub, update)
                runtime.stats.updates_sent += 1
            for update in runtime.fanout.lag_parts(sub, runtime.wall_clock()):  # lagging: the latest state
                await _send_frame(runtime, sub, update)
                runtime.stats.updates_sent += 1
            while sub.pending_alerts:
                await _send_frame(runtime, sub, _take_alerts(runtime, sub))
    except TimeoutError:
        pass
    except ConnectionError:
        return
    await _close_too_slow(runtime, sub)


async def _close_too_slow(runtime: CollectorRuntime, sub: Subscriber) -> None:
    """4429 ``subscriber_too_slow``, counted and logged paced, saying which bound it passed."""
    reason = ErrorReason.SUBSCRIBER_TOO_SLOW
    if sub.over_unsent is not None:
        limit = sub.outbox.max_unsent_bytes
        detail = f"expected reads while {limit} bytes of updates passed, got none in {sub.over_unsent}"
    else:
        detail = f"expected each send to finish within {runtime.config.send_timeout_s:g} s, got one that did not"
    runtime.count_close("subscribe", sub.peer, CloseCode.SUBSCRIBER_TOO_SLOW, reason.value, detail)
    runtime.subscribers.discard(sub)
    runtime.stats.updates_dropped += sub.outbox.clear()
    await runtime.close_ws(sub.ws, CloseCode.SUBSCRIBER_TOO_SLOW, reason.value.encode())
    runtime.abort(sub.ws)


def cut(runtime: CollectorRuntime, sub: Subscriber) -> None:
    """Stop queueing to ``sub`` and end its send at once: it read nothing while the bound's bytes passed it (12c)."""
    sub.over_unsent = sub.outbox.skipped_bytes
    runtime.subscribers.discard(sub)
    runtime.stats.updates_dropped += sub.outbox.clear()  # the memory goes now, not when the close is done
    runtime.fanout.stats.cut_unsent += 1
    sub.wake.set()
    if sub.deadline is not None:
        sub.deadline.reschedule(asyncio.get_running_loop().time())  # the blocked send raises TimeoutError


async def fanout_loop(runtime: CollectorRuntime) -> None:
    """Flush the fan-out at most once per flush interval while changes are pending (``create_app`` runs it)."""
    fanout = runtime.fanout
    loop = asyncio.get_running_loop()
    while True:
        await fanout.wake.wait()
        delay_s = fanout.last_flush_at + runtime.config.flush_interval_s - loop.time()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        fanout.wake.clear()
        fanout.last_flush_at = loop.time()
        try:
            over = fanout.flush(runtime.subscribers, runtime.wall_clock())
        except Exception as exc:  # noqa: BLE001 - a bug of ours loses one flush (counted, logged), not the fan-out
            runtime.internal_error("subscribe", "fan-out", exc)
            continue
        for sub in over:
            assert isinstance(sub, Subscriber)
            cut(runtime, sub)


def _take_alerts(runtime: CollectorRuntime, sub: Subscriber) -> bytes | str:
    """One ``alert`` message with the oldest pending transitions (at most ``MAX_ALERTS_PER_MESSAGE``)."""
    events = [sub.pending_alerts.popleft() for _ in range(min(len(sub.pending_alerts), wire.MAX_ALERTS_PER_MESSAGE))]
    return wire.alert_update_frame(runtime.wall_clock(), events, sub.json_format)


async def _send_frame(runtime: CollectorRuntime, sub: Subscriber, frame: bytes | str) -> None:
    async with asyncio.timeout(runtime.config.send_timeout_s) as deadline:
        sub.deadline = deadline
        sub.outbox.wrote(frame)
        try:
            if isinstance(frame, str):
                await sub.ws.send_str(frame)
            else:
                await sub.ws.send_bytes(frame)
        finally:
            sub.deadline = None
