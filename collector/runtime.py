"""What one running collector holds, and the plumbing its handlers share.

``CollectorRuntime`` owns the node cache, the counters, the open websockets,
the subscribers and the two background loops (liveness, event-loop lag). It is
the ``IngestObserver`` of every ingest connection: it fans changes out, aborts
replaced connections and counts heartbeats. Its websocket helpers give every
handler the same close, abort, reject and fault paths.

Not here: the handlers themselves (``collector.ingest``, ``collector.subscribe``,
``collector.http_api``), the routes (``collector.app``), and the liveness rules
(``collector.cache``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMessage, web

from collector import aiohttp_private
from collector.alerting import AlertHub
from collector.alerts.delivery import Sender, apprise_senders
from collector.cache import NodeCache
from collector.changes import Change, ChangeKind, HeartbeatResult
from collector.config import CollectorConfig
from collector.fanout import Fanout, FanoutLimits
from collector.meters import LagMeter, RateMeter
from collector.metrics import CollectorStats
from collector.node_metrics import SlowDetails
from collector.store.service import REFRESH_INTERVAL_S, DurableStore
from collector.timers import Clock, Scheduler
from collector.trust.budget import NEW_NODE_BURST, new_node_budget
from collector.trust.gate import HelloGate
from collector.trust.nodetable import PeerGate
from collector.trust.penalty import RefusalPenalty
from collector.trust.ratelog import LineBudget, LogGate, warn_limited
from collector.trust.scope import parse_token_specs
from shared.codec import INGEST_LIMITS, FrameDecoder, encode, encode_json
from shared.errors import CloseCode, ErrorReason, ProtocolError
from shared.messages import Error, Heartbeat

if TYPE_CHECKING:
    from collector.subscribe import Subscriber

log = logging.getLogger("nodewatch.collector")

# Liveness passes run at most this often; well under the 100 ms flush, so no viewer can tell.
LIVENESS_TICK_S = 0.05
# At most one "connection limit reached" warning per this many seconds (thousands per second otherwise).
BUSY_LOG_INTERVAL_S = 10.0
# Peer errors: at most one line per endpoint and reason a second, with the count of the rest.
CLOSE_LOG_INTERVAL_S = 1.0
# Error.detail is at most 1,024 characters (docs/protocol.md, section 5.4).
MAX_ERROR_DETAIL = 1024
_SAMPLE_BIT = ChangeKind.SAMPLE.value
# How often the store loop looks for nodes whose refused samples can be replayed now.
STORE_TICK_S = 1.0


class CollectorRuntime:
    """Everything one running collector holds; built by ``create_app``, stored under ``RUNTIME_KEY``."""

    def __init__(
        self,
        config: CollectorConfig,
        clock: Clock,
        wall_clock: Clock,
        scheduler: Scheduler,
        cache: NodeCache | None = None,
        *,
        alert_senders: Mapping[str, Sender] | None = None,
        fanout_limits: FanoutLimits | None = None,
    ) -> None:
        """``alert_senders``: one Apprise sender per route (``main`` builds them to check URLs first)."""
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.scheduler = scheduler
        if cache is None:  # not `cache or ...`: an empty cache is falsy
            cache = NodeCache(
                forget_after_s=config.forget_after_s,
                max_nodes=config.max_nodes,
                history_window_s=config.history_window_s,
                history_max_points=config.history_max_points,
            )
        self.cache = cache
        self._store: DurableStore | None = None
        self.decoder = FrameDecoder(INGEST_LIMITS)  # shared by every ingest session: one packer, not one each
        self.stats = CollectorStats()
        self.details = SlowDetails()  # each node's last slow-tier heartbeat, for /metrics
        self.ingest_rate = RateMeter()
        self.lag = LagMeter()
        self.subscribers: set[Subscriber] = set()
        # One pending buffer, one encoding per format per flush, shared by every subscriber (issue 13, 12a-c).
        self.fanout = Fanout(cache, fanout_limits or FanoutLimits(), config.snapshot_history_points)
        self.agents: dict[int, web.Request] = {}  # connection id -> its request, once its hello is accepted
        self.websockets: dict[web.WebSocketResponse, web.Request] = {}
        self.started_at = wall_clock()
        self.started_mono = clock()
        if alert_senders is None:
            alert_senders = apprise_senders(config.alerts.routes)
        self.alerts = AlertHub(
            config.alerts,
            alert_senders,
            self.cache,
            self.subscribers,
            state_dir=config.data_dir,
            wall_clock=wall_clock,
            clock=clock,
        )
        self.alerts.restore()  # before ingest opens: firing alerts stay firing, nobody is told twice
        # A token-file line may scope its token to node-id patterns ("TOKEN web-*,db-??"; collector.trust.scope).
        tokens, scopes = parse_token_specs(config.agent_tokens)
        self.agent_tokens = [t.encode() for t in tokens]
        # Node keys (TOFU) and the hello budgets; with a store, the key records persist in its data dir.
        # A fleet of up to --max-nodes may register at once with a fresh collector; beyond that, new node
        # ids per token come at 10/s (a junk-id flood fills the table at most once, and evicts only junk).
        self.hello_gate = HelloGate(
            logger=log,
            new_nodes=new_node_budget(burst=max(NEW_NODE_BURST, config.max_nodes)),
            scopes={f"token-{i}": scope for i, scope in enumerate(scopes) if scope.patterns},
        )
        self._close_log = LogGate(interval_s=CLOSE_LOG_INTERVAL_S)
        # Unauthenticated sockets per peer address, for the CLI's AdmissionSite (collector.admission).
        self.peer_gate = PeerGate()
        # Per (address, token) refusal scores: a peer refused again and again gets 429 before upgrading.
        self.refusals = RefusalPenalty()
        self.hello_log = LineBudget()  # the per-hello INFO line, DEBUG past its budget (collector.ingest)
        self.viewer_tokens = [t.encode() for t in config.viewer_tokens]
        self._conn_ids = itertools.count(1)
        self._liveness_wake = asyncio.Event()
        self._liveness_target = math.inf
        self._busy_refused = 0  # connection-limit 503s since the last warning about them
        self._busy_logged_at = -math.inf

    @property
    def store(self) -> DurableStore | None:
        """The durable store, set by ``create_app`` when ``config.data_dir`` is set; None keeps all in memory."""
        return self._store

    @store.setter
    def store(self, store: DurableStore | None) -> None:
        """Setting the store loads the node keys it read, before any hello can arrive, and saves them from then on."""
        if store is not None:  # the keys first: the store is in use only with the keys it read loaded
            store.keys.track(self.hello_gate.identity)
        self._store = store

    def next_conn(self) -> int:
        """A fresh id for an ingest connection (the cache knows connections by these)."""
        return next(self._conn_ids)

    # ---- fan-out, and what every ingest connection reports -----------------------------------

    def publish(self, changes: list[Change]) -> None:
        """Fan out the changes of a hello, a close or a liveness pass, and tell the alerts about them."""
        if changes:
            self._fan_out(changes)
            self.alerts.changed(changes)

    def _fan_out(self, changes: list[Change]) -> None:
        """Merge ``changes`` into the fan-out's one buffer; never awaits, so ingest never waits on a viewer."""
        self.stats.updates_coalesced += self.fanout.changed(changes, bool(self.subscribers))
        due = self.cache.next_due()
        if due is not None and due < self._liveness_target:
            self._liveness_wake.set()

    def heartbeat_applied(self, result: HeartbeatResult, now: float, heartbeat: Heartbeat) -> None:
        """Count one heartbeat, publish what it changed, and judge alerts on it if it is the newest sample."""
        stats = self.stats
        stats.heartbeats_received += 1
        self.ingest_rate.record(now)
        changes, record = result.changes, result.record
        stats.updates_coalesced += self.fanout.changed(changes, bool(self.subscribers))
        # A heartbeat moves only its own node's deadline, and earlier only when it brought the node
        # back online: its record says so, no need to look at the heap (this runs per heartbeat).
        if record is not None and record.heap_due is not None and record.heap_due < self._liveness_target:
            self._liveness_wake.set()
        if result.duplicate:
            stats.heartbeats_duplicate += 1
        elif record is not None and changes[0].kind.value & _SAMPLE_BIT:
            self.alerts.sample_record(record, heartbeat)
            self.details.note(record, heartbeat)

    def replaced(self, conn: int) -> None:
        """The agent reconnected, so its old socket is half-open: abort it, no close handshake to wait for."""
        self.drop_agent(conn, "reconnected; dropping its old connection")

    def drop_agent(self, conn: int, why: str) -> None:
        """Abort ingest connection ``conn`` without a close frame (the peer sees 1006)."""
        request = self.agents.get(conn)
        if request is not None and request.transport is not None:
            log.info("ingest %r: %s", request.remote, why)
            request.transport.abort()

    # ---- background tasks ----------------------------------------------------------------

    async def liveness_loop(self) -> None:
        """Apply transitions when they fall due: sleep on the app's clock until the next one, or until poked."""
        while True:
            now = self.clock()
            result = self.cache.expire(now, self.wall_clock())
            for conn in result.drop_conns:
                # Offline on an open socket: a dead peer or a half-open connection (agents are not pinged).
                self.drop_agent(conn, "node offline; dropping its silent connection")
            self.publish(result.changes)
            if self.store is not None and result.changes:
                self.store.changed(result.changes)
            due = self.cache.next_due()
            self._liveness_target = math.inf if due is None else due
            self._liveness_wake.clear()
            # At least LIVENESS_TICK_S between passes: with thousands of nodes some entry is
            # always nearly due (heartbeats re-arm them lazily), and one wake-up per entry cost ~4 %
            # of a core at 5,000 nodes. Transitions are still stamped with their due time.
            timer = None if due is None else self.scheduler.call_at(max(due, now + LIVENESS_TICK_S), self._wake)
            try:
                await self._liveness_wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    def _wake(self) -> None:
        self._liveness_wake.set()

    async def store_loop(self, store: DurableStore) -> None:
        """Back-pressure and registry upkeep: resync nodes the store can take again; refresh rows every minute."""
        refreshed = self.clock()
        while True:
            await asyncio.sleep(STORE_TICK_S)
            await store.keys.save()  # at most one save a tick: a burst of first uses is one write
            for conn in store.resync_conns():
                self.drop_agent(conn, "the store can take its backlog again; it reconnects and replays")
            now = self.clock()
            if now - refreshed >= REFRESH_INTERVAL_S:
                refreshed = now
                store.refresh()

    async def lag_loop(self) -> None:
        """Measure how late a short sleep wakes up: the event loop's lag (real time, not the app's clock)."""
        loop = asyncio.get_running_loop()
        interval_s = self.config.lag_probe_interval_s
        while True:
            start = loop.time()
            await asyncio.sleep(interval_s)
            woke = loop.time()
            self.lag.record(woke, woke - start - interval_s)

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
    def tracked(self, ws: web.WebSocketResponse, request: web.Request, endpoint: str) -> Iterator[None]:
        """Count the websocket and keep it where shutdown can find it, for as long as the block runs."""
        self.websockets[ws] = request
        self.stats.connections_total[endpoint] += 1
        self.stats.connections_active[endpoint] += 1
        try:
            yield
        finally:
            self.stats.connections_active[endpoint] -= 1
            del self.websockets[ws]
            aiohttp_private.cancel_heartbeat(ws)

    async def close_ws(self, ws: web.WebSocketResponse, code: int, reason: bytes) -> None:
        """Close politely within ``close_timeout_s``; a peer that does not read gets its transport aborted."""
        try:
            async with asyncio.timeout(self.config.close_timeout_s):
                await ws.close(code=code, message=reason)
        except (TimeoutError, ConnectionError):
            self.abort(ws)

    def abort(self, ws: web.WebSocketResponse) -> None:
        """Drop the connection under ``ws`` with no close frame."""
        request = self.websockets.get(ws)
        transport = request.transport if request is not None else None
        if transport is not None:
            transport.abort()

    def count_close(self, endpoint: str, peer: str, code: int, reason: str, detail: str) -> None:
        """One counter, and one log line per reason per second, for a connection we close for what the peer did.

        A flood of bad connections (a junk-id storm, a misconfigured fleet) must not write a line each:
        the line that goes out says how many like it were held back.
        """
        self.stats.protocol_errors[(endpoint, reason)] += 1
        warn_limited(
            log, self._close_log, f"{endpoint}:{reason}", self.clock(),
            "%s %r: closing with %d %s: %.200r", endpoint, peer, code, reason, detail,
        )  # fmt: skip

    async def reject(
        self, ws: web.WebSocketResponse, peer: str, endpoint: str, exc: ProtocolError, *, text: bool
    ) -> None:
        """One log line, one counter, an Error frame, then the reason's close code."""
        self.count_close(endpoint, peer, exc.close_code, exc.reason.value, exc.detail)
        await self.send_error_and_close(ws, exc, text=text)

    async def send_error_and_close(self, ws: web.WebSocketResponse, exc: ProtocolError, *, text: bool) -> None:
        """An Error frame (as JSON text if ``text``), then the reason's close code; each bounded in time."""
        error = Error(reason=exc.reason.value, detail=exc.detail[:MAX_ERROR_DETAIL])
        with suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.config.close_timeout_s):
                if text:
                    await ws.send_str(encode_json(error))
                else:
                    await ws.send_bytes(encode(error))
        await self.close_ws(ws, exc.close_code, exc.reason.value.encode())

    def internal_error(self, endpoint: str, peer: str, exc: Exception) -> None:
        """A bug of ours hit one peer: count it and log one line (the traceback only at DEBUG)."""
        while isinstance(exc, ExceptionGroup) and exc.exceptions:  # from a handler's TaskGroup
            first = exc.exceptions[0]
            if not isinstance(first, Exception):
                break
            exc = first
        self.stats.protocol_errors[(endpoint, ErrorReason.INTERNAL.value)] += 1
        log.error("%s %r: closing with %d internal: unexpected %.200r", endpoint, peer, CloseCode.INTERNAL_ERROR, exc)
        log.debug("%s %r: the internal error's traceback", endpoint, peer, exc_info=exc)

    def count_transport_error(self, endpoint: str, msg: WSMessage) -> None:
        """aiohttp already closed the socket (1009 for an over-cap frame); count it by our reason."""
        data = msg.data
        if not isinstance(data, Exception):
            return
        code = getattr(data, "code", None)
        reason = ErrorReason.FRAME_TOO_LARGE if code == WSCloseCode.MESSAGE_TOO_BIG else ErrorReason.MALFORMED_MSGPACK
        if code is not None:
            self.stats.protocol_errors[(endpoint, reason.value)] += 1
            log.warning("%s: closed by the websocket layer with %s: %.200r", endpoint, code, data)
