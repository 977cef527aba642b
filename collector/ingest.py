"""``GET /api/v1/ingest``: the aiohttp shell around one ``IngestSession`` per agent connection.

The shell receives frames and feeds them to the session, executes the actions
it returns (send, close, drop, wake me at t), and arms the one timer the
session asks for on the app's ``Scheduler``. While the conversation streams, binary
frames are taken in the transport's callback as aiohttp parses them, with no task
switch per frame (``collector.ingest_tap``); only what must await wakes the loop. Websocket pings reach the loop too
(aiohttp's autoping is off): the session's ping budget sees each one, and only
those under it get a pong (issue 13, finding 16b). While a hello's backlog is owed,
the loop pauses between frames as ``ReplayPace`` says (1,000 frames/s past a
burst of 1,000; docs/security.md, 3.3), so TCP slows a replaying agent. An
accepted hello vouches for its peer address (``PeerGate.vouch``). Every protocol rule lives in
``collector.ingest_session``; the samples go to the ``NodeCache`` through a
``CachePort`` whose observer is the ``CollectorRuntime``.

An unexpected exception on one connection closes that connection with 1011
``internal``, counted and logged in one line; nobody else notices.

Not here: auth (``collector.http_api.token_ok``), admission at accept time
(``collector.admission``), the protocol rules themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from contextlib import suppress
from functools import partial
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from collector.admission import parked_meter, penalty_response
from collector.http_api import token_ok, unauthorized, upgrade
from collector.ingest_session import (
    Actions,
    CachePort,
    Close,
    Drop,
    IngestPort,
    IngestSession,
    Phase,
    SendFrame,
    WakeAt,
)
from collector.ingest_tap import FrameTap, send_now
from collector.runtime import CollectorRuntime
from collector.store.port import StorePort
from collector.timers import TimerHandle
from collector.trust.budget import ReplayPace, replay_owed
from collector.trust.gate import token_label
from collector.trust.ratelog import info_budgeted
from shared.errors import CloseCode, ErrorReason
from shared.messages import Hello

log = logging.getLogger("nodewatch.collector")

_CLOSED = Phase.CLOSED
_BINARY = WSMsgType.BINARY
_TEXT = WSMsgType.TEXT
_PING = WSMsgType.PING
_PONG = WSMsgType.PONG


class IngestConnection:
    """One agent's websocket: the receive loop, the action executor and the session's one timer."""

    __slots__ = (
        "_fast",
        "_label",
        "_pace",
        "_parked",
        "_tasks",
        "_timer",
        "changed",
        "conn",
        "heartbeat_applied",
        "peer",
        "replaced",
        "request",
        "runtime",
        "session",
        "ws",
    )

    def __init__(self, runtime: CollectorRuntime, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.runtime = runtime
        self.ws = ws
        self.request = request
        self.peer = str(request.remote)
        self.conn = runtime.next_conn()
        # This connection is its CachePort's observer; the runtime's bound methods are taken as
        # they are, so a heartbeat costs no extra call.
        self.changed = runtime.publish
        self.heartbeat_applied = runtime.heartbeat_applied
        self.replaced = runtime.replaced
        cfg = runtime.config
        self._label = token_label(request.headers.get("Authorization", ""), runtime.agent_tokens)
        cache_port = CachePort(
            runtime.cache,
            self.conn,
            runtime.wall_clock,
            self,
            gate=runtime.hello_gate,
            peer=self.peer,
            label=self._label,
        )
        # With a store, acks wait for the commit that holds the sample.
        port: IngestPort = cache_port if runtime.store is None else StorePort(cache_port, runtime.store)
        self.session = IngestSession(
            port,
            now=runtime.clock(),
            hello_timeout_s=cfg.hello_timeout_s,
            ack_interval_s=cfg.ack_interval_s,
            decoder=runtime.decoder,
        )
        self._timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # actions a timer produced, run outside the receive loop
        self._pace: ReplayPace | None = None  # set by the hello while a backlog is owed (docs/security.md, 3.3)
        # While streaming, run() parks and the transport's callback takes binary frames (collector.ingest_tap).
        self._fast = FrameTap(ws, self.session, self._frame, self._arm, partial(send_now, ws, request.transport))
        # The bytes this connection parks count against one budget for all (behind the CLI's AdmissionSite).
        self._parked = parked_meter(request.transport)
        if self._parked is not None:
            self._parked[0].activate(self._parked[1])

    def hello_accepted(self, hello: Hello, ack_seq: int) -> None:
        """The node is ours now: health counts this agent, a later hello of its instance can replace it."""
        self.runtime.agents[self.conn] = self.request
        # This address proved itself: its reconnect storms get the vouched per-address cap (collector.admission).
        self.runtime.peer_gate.vouch(self.peer, self.runtime.clock())
        owed = replay_owed(hello.newest_seq, ack_seq)
        # The pacing waits on the loop's clock (asyncio.sleep), so it counts on that clock too.
        self._pace = ReplayPace(owed, asyncio.get_running_loop().time()) if owed else None
        if self._parked is not None:
            self._parked[1].replaying = self._pace is not None  # its queue of whole frames fills by design
        info_budgeted(  # a reconnect flood's hellos go to DEBUG past 100 in a row (trust.ratelog.LineBudget)
            log,
            self.runtime.hello_log,
            self.runtime.clock(),
            "ingest %r: hello from node %r (instance %r), ack %d",
            self.peer,
            hello.node_id,
            hello.agent_instance_id,
            ack_seq,
        )

    async def run(self) -> None:
        """Receive until the session or the peer ends the conversation."""
        session, ws, clock, fast = self.session, self.ws, self.runtime.clock, self._fast
        tapped = self.request.transport is not None and fast.install(self.request.transport)
        try:
            await self.execute(session.start())
            while session.phase is not _CLOSED:
                if tapped and fast.parkable():
                    if (left := await fast.park()) is not None:
                        await self._after(*left)
                    continue
                msg = await ws.receive()
                kind = msg.type
                if kind is _BINARY or kind is _TEXT:
                    await self._after(*self._frame(msg.data))
                    continue
                if kind is _PING or kind is _PONG:
                    await self._ping(msg)
                    continue
                if kind is WSMsgType.ERROR:
                    self.runtime.count_transport_error("ingest", msg)
                session.receive_close(msg.data if kind is WSMsgType.CLOSE else None, clock())
        except Exception as exc:  # noqa: BLE001 - a bug of ours costs this one connection a 1011, never the collector
            await self._fail(exc)
        finally:
            fast.remove()
            if self._timer is not None:
                self._timer.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if session.phase is not _CLOSED:  # cancelled (shutdown): the cache still hears the connection ended
                session.receive_close(None, clock())
            self._count_shed()
            self.runtime.agents.pop(self.conn, None)

    def _frame(self, data: bytes | str) -> tuple[Actions, float]:
        """One data frame: count it as taken, feed it to the session; its actions, and the replay pause after it."""
        now = self.runtime.clock()
        meter = self._parked
        if meter is not None:
            meter[0].taken(meter[1], len(data), now, data=True)
        actions = self.session.receive_frame(data, now)
        return actions, (self._pace_delay() if self._pace is not None else 0.0)

    async def _after(self, actions: Actions, delay: float) -> None:
        """What a frame left: its actions, then the replay pace's pause (TCP slows the agent meanwhile)."""
        if actions:
            await self.execute(actions)
        if delay:
            await asyncio.sleep(delay)

    def _count_shed(self) -> None:
        """If the parked-bytes budget closed this connection (1009, collector.admission): count it, log it paced."""
        if self._parked is None or not self._parked[1].shed:
            return
        detail = "expected whole messages, got one of the largest unfinished ones over the collector's budget"
        self.runtime.count_close("ingest", self.peer, 1009, ErrorReason.PARKED_BYTES_EXCEEDED, detail)

    def _pace_delay(self) -> float:
        """Backlog replay at the budget's pace: how long to stop reading after this frame (a plain call per frame)."""
        pace = self._pace
        if pace is None:
            return 0.0
        delay = pace.frame(asyncio.get_running_loop().time())
        if pace.done:
            self._pace = None
        return delay

    async def _ping(self, msg: WSMessage) -> None:
        """Autoping is off (``handle_ingest``): the budget sees every ping, and only those under it get a pong.

        Past the budget the session closes with 4430 (docs/security.md, finding 16b). A pong needs nothing.
        Neither is progress for the parked-bytes budget (a ping cannot keep an unfinished message alive).
        """
        if self._parked is not None:
            self._parked[0].taken(self._parked[1], len(msg.data), self.runtime.clock(), data=False)
        if msg.type is not _PING:
            return
        actions = self.session.receive_ping(self.runtime.clock())
        if actions:
            await self.execute(actions)
        else:
            await self.ws.pong(msg.data)

    async def execute(self, actions: Actions) -> None:
        """Run the session's actions in order."""
        for action in actions:
            if type(action) is SendFrame:
                await self._send(action.data)
            elif type(action) is WakeAt:
                self._arm(action.at)
            elif type(action) is Close:
                if action.reason != ErrorReason.INTERNAL:  # internal_error already logged and counted it
                    self.runtime.count_close("ingest", self.peer, action.code, action.reason, action.detail)
                # Refused 4430 again and again: its next upgrades get a 429 for a while (trust.penalty).
                if self.runtime.refusals.refused(self.peer, self._label, action.code, self.runtime.clock()):
                    self.runtime.stats.penalties_armed += 1
                await self.runtime.close_ws(self.ws, action.code, action.reason.encode())
            elif type(action) is Drop and self.request.transport is not None:
                log.info("ingest %r: dropped: %s", self.peer, action.detail)
                self.request.transport.abort()

    def _arm(self, at: float) -> None:
        """The session's one timer, at ``at``: it replaces any earlier one."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.runtime.scheduler.call_at(at, self._on_wake)

    def _on_wake(self) -> None:
        """The session's timer fired: tick it; anything but a re-arm runs as a task (once per ack window)."""
        self._timer = None
        try:
            actions = self.session.tick(self.runtime.clock())
        except Exception as exc:  # noqa: BLE001 - as in run(): this connection only
            self._spawn(self._fail(exc))
            return
        if len(actions) == 1 and type(actions[0]) is WakeAt:
            self._timer = self.runtime.scheduler.call_at(actions[0].at, self._on_wake)
        elif actions:
            self._spawn(self._execute_guarded(actions))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task this connection awaits before its handler returns."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute_guarded(self, actions: Actions) -> None:
        try:
            await self.execute(actions)
        except Exception as exc:  # noqa: BLE001 - as in run(): this connection only
            await self._fail(exc)

    async def _fail(self, exc: Exception) -> None:
        """Close this connection with 1011 after a bug of ours; if even that fails, abort it."""
        self.runtime.internal_error("ingest", self.peer, exc)
        try:
            await self.execute(tuple(a for a in self.session.fail(self.runtime.clock()) if type(a) is not WakeAt))
        except Exception:  # noqa: BLE001 - the connection is beyond saving; the collector is not
            self.runtime.abort(self.ws)
            with suppress(Exception):
                await self.ws.close(code=CloseCode.INTERNAL_ERROR)

    async def _send(self, data: bytes) -> None:
        """Send one frame; an agent that stopped reading (send over ``send_timeout_s``) is aborted."""
        if send_now(self.ws, self.request.transport, data):
            return
        try:
            async with asyncio.timeout(self.runtime.config.send_timeout_s):
                await self.ws.send_bytes(data)
        except TimeoutError:
            self.runtime.abort(self.ws)
        except ConnectionError:
            # The agent went away between its heartbeat and our ack (aiohttp raises
            # ClientConnectionResetError, a ConnectionResetError); the next receive() ends the loop.
            return


async def handle_ingest(runtime: CollectorRuntime, request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/ingest``: one agent's hello, then its heartbeats, each acked cumulatively."""
    if not token_ok(request, runtime.agent_tokens):
        return unauthorized(runtime, request, "ingest", "agent")
    # A peer refused again and again gets 429 before any upgrade, hello or frame (docs/security.md, 3.3).
    label = token_label(request.headers.get("Authorization", ""), runtime.agent_tokens)
    penalized = runtime.refusals.check(str(request.remote), label, runtime.clock())
    if penalized is not None:
        runtime.stats.penalized_upgrades += 1
        return penalty_response(penalized)
    cfg = runtime.config
    ws = await upgrade(
        request,
        # No pings: aiohttp re-arms its ping timer on every frame received (~5 % of the
        # collector's CPU at 1 Hz per node), and heartbeats already prove the agent alive.
        # A dead agent connection is dropped when its node goes offline (NodeCache.expire).
        heartbeat_s=None,
        max_msg_bytes=cfg.ingest_max_msg_bytes,
        close_timeout_s=cfg.close_timeout_s,
        # aiohttp would answer every ping itself, unbudgeted (issue 13, finding 16b): the
        # receive loop feeds them to IngestSession.receive_ping and answers those it admits.
        autoping=False,
    )
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    with runtime.tracked(ws, request, "ingest"):
        await IngestConnection(runtime, ws, request).run()
    return ws
