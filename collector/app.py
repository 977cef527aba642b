"""The collector's aiohttp application: ``create_app``, its routes and its lifecycle.

``create_app`` builds one ``CollectorRuntime`` (state, counters, the liveness
and lag loops) and routes each endpoint to its handler module: ingest
(``collector.ingest``), subscribe (``collector.subscribe``) and the JSON API
and /metrics (``collector.http_api``). The two background loops live in
``cleanup_ctx``; every websocket is closed with 1001 in ``on_shutdown``.

Not here: argument parsing, TLS contexts, signals (``collector.cli``), and any
protocol rule (``collector.ingest_session``, ``collector.cache``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from aiohttp import WSCloseCode, web

from collector.admin_api import AdminApi
from collector.alerts.delivery import Sender
from collector.alerts_api import AlertsApi
from collector.cache import NodeCache
from collector.config import CollectorConfig
from collector.fanout import FanoutLimits
from collector.http_api import HttpApi
from collector.ingest import handle_ingest
from collector.runtime import CollectorRuntime
from collector.store.service import DurableStore
from collector.subscribe import fanout_loop, handle_subscribe
from collector.timers import Clock, LoopScheduler, Scheduler
from shared.limits import HEALTH_PATH, INGEST_PATH, METRICS_PATH, NODES_PATH, SUBSCRIBE_PATH

__all__ = ["RUNTIME_KEY", "CollectorRuntime", "create_app"]

log = logging.getLogger("nodewatch.collector")

# Close-frame messages are capped at 123 bytes by RFC 6455 section 5.5; our reasons are short ASCII.
SHUTDOWN_REASON = b"collector shutting down"

RUNTIME_KEY = web.AppKey("nodewatch_collector", CollectorRuntime)


@contextlib.asynccontextmanager
async def _tasks(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``coros`` as tasks for the length of the block, then cancel and await every one."""
    tasks = [asyncio.create_task(coro) for coro in coros]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _background(runtime: CollectorRuntime, app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the liveness and lag tasks for the app's lifetime, then cancel and await them."""
    # alerts.run(): alert timers, delivery, saving (a last save at exit); fanout_loop: one update per flush for all
    async with _tasks(runtime.liveness_loop(), runtime.lag_loop(), runtime.alerts.run(), fanout_loop(runtime)):
        yield


async def _store(runtime: CollectorRuntime, app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the store's writer thread and upkeep loop; at exit, commit what is queued and close."""
    store = runtime.store
    if store is None:
        yield
        return
    store.start(asyncio.get_running_loop())
    try:
        async with _tasks(runtime.store_loop(store), _fill(runtime, store)):
            yield
    finally:
        await store.close()


async def _fill(runtime: CollectorRuntime, store: DurableStore) -> None:
    """Refill the restored nodes' rings from the store, and publish the newer latest samples it had."""
    try:
        runtime.publish(await store.fill_rings())
    except Exception:  # the fleet is restored already; only its charts start empty
        log.exception("store: the recent window could not be loaded; charts start empty")


async def _shutdown(runtime: CollectorRuntime, app: web.Application) -> None:
    """on_shutdown: close every websocket with 1001, all in parallel, each bounded by close_timeout_s."""
    runtime.subscribers.clear()  # nothing more is published to them; their handlers count what was dropped
    await asyncio.gather(
        *(runtime.close_ws(ws, WSCloseCode.GOING_AWAY, SHUTDOWN_REASON) for ws in list(runtime.websockets)),
        return_exceptions=True,
    )


def create_app(
    config: CollectorConfig | None = None,
    *,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    scheduler: Scheduler | None = None,
    cache: NodeCache | None = None,
    alert_senders: Mapping[str, Sender] | None = None,
    fanout_limits: FanoutLimits | None = None,
) -> web.Application:
    """Build the collector's aiohttp application.

    ``clock`` judges liveness and ``wall_clock`` stamps ``*_at``. ``scheduler`` runs timers on
    ``clock`` (default: the event loop, for a clock that moves with real time; a test with a
    fake clock passes one that fires as the test moves it). ``cache`` replaces the node cache
    built from ``config``, e.g. with one that fails on purpose. ``alert_senders`` are the Apprise
    senders of ``config.alerts.routes`` (default: built here; ``main`` builds them first to check URLs).
    ``fanout_limits`` bound the subscribers (``--max-subscribers``; default ``FanoutLimits()``).

    With ``config.data_dir`` set, the durable store is opened here and the fleet restored from it
    (``collector.store.service``); this raises ``StoreOpenError`` naming the file and what to do.
    Without it (the default) everything stays in memory.
    """
    runtime = CollectorRuntime(
        config or CollectorConfig(),
        clock,
        wall_clock,
        scheduler or LoopScheduler(clock),
        cache,
        alert_senders=alert_senders,
        fanout_limits=fanout_limits,
    )
    if runtime.config.data_dir is not None:
        runtime.store = DurableStore.open(runtime.config, runtime.cache, clock, wall_clock)
    api = HttpApi(runtime)
    app = web.Application(middlewares=[api.internal_errors])
    app[RUNTIME_KEY] = runtime
    app.router.add_get(HEALTH_PATH, api.health)
    app.router.add_get(NODES_PATH, api.nodes)
    app.router.add_get(NODES_PATH + "/{node_id}", api.node)
    app.router.add_get(NODES_PATH + "/{node_id}/history", api.history)
    app.router.add_get(INGEST_PATH, functools.partial(handle_ingest, runtime))
    app.router.add_get(SUBSCRIBE_PATH, functools.partial(handle_subscribe, runtime))
    app.router.add_get(METRICS_PATH, api.metrics)
    AlertsApi(runtime).add_routes(app.router)
    AdminApi(runtime, runtime.config.admin_tokens).add_routes(app.router)  # 403 unless --admin-token-file
    app.router.add_route("*", "/api/{tail:.*}", api.api_not_found)
    app.cleanup_ctx.append(functools.partial(_background, runtime))
    app.cleanup_ctx.append(functools.partial(_store, runtime))
    app.on_shutdown.append(functools.partial(_shutdown, runtime))
    return app
