"""``nodewatch collector``: parse options, build a ``CollectorConfig``, serve until SIGINT/SIGTERM.

This is the only collector module that reads the environment or installs signal
handlers and logging. It holds no protocol logic (``collector.app``,
``collector.cache``); the options and their checks are ``collector.cli_options``, and
the process's startup chores (open-files and admission limits, GC tuning, the listen
banner) are ``collector.startup``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import ssl
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiohttp import web

from collector.admission import AdmissionSite
from collector.alerts.delivery import Sender, apprise_senders, silence_apprise_logs
from collector.alerts.settings import AlertConfigError
from collector.app import RUNTIME_KEY, create_app
from collector.cli_options import build_parser, config_from_args, read_tokens
from collector.config import CollectorConfig
from collector.fanout import FanoutLimits
from collector.startup import (
    FD_HEADROOM,
    GC_THRESHOLDS,
    announce,
    connection_limit,
    is_loopback,
    raise_nofile_limit,
    tune_gc,
)
from collector.store.datadir import default_data_dir
from collector.store.model import StoreOpenError
from collector.trust.penalty import IngestPenalty

__all__ = [  # the options moved to collector.cli_options, the startup chores to collector.startup; importable here
    "FD_HEADROOM",
    "GC_THRESHOLDS",
    "build_parser",
    "config_from_args",
    "connection_limit",
    "is_loopback",
    "main",
    "raise_nofile_limit",
    "read_tokens",
    "serve",
    "tune_gc",
]

log = logging.getLogger("nodewatch.collector")

# SIGTERM must end the process within 2 s; cleanup gets this long, then asyncio.run cancels what is left.
CLEANUP_DEADLINE_S = 1.8


def ssl_context(config: CollectorConfig) -> ssl.SSLContext | None:
    """A server TLS context for --tls-cert/--tls-key, or None for plain http/ws."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


async def serve(
    config: CollectorConfig,
    context: ssl.SSLContext | None,
    alert_senders: Mapping[str, Sender] | None = None,
    fanout_limits: FanoutLimits | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM, then close every websocket with 1001 and return 0."""
    open_files = raise_nofile_limit(config.max_nodes)
    try:
        app = create_app(config, alert_senders=alert_senders, fanout_limits=fanout_limits)
    except StoreOpenError as exc:
        print(f"nodewatch collector: error: --data-dir: {exc}", file=sys.stderr)
        return 2
    runner = web.AppRunner(app, shutdown_timeout=config.shutdown_timeout_s, access_log=None, handle_signals=False)
    await runner.setup()
    site = AdmissionSite(
        runner,
        config.host,
        config.port,
        ssl_context=context,
        backlog=config.backlog,
        limit=connection_limit(config, open_files),
        on_refused=app[RUNTIME_KEY].refused_busy,
        # Only upgraded, authenticated ingest websockets count toward the limit; idle and unauthenticated
        # sockets are bounded per address and by the header deadline instead (issue 13, finding 4).
        count=functools.partial(app[RUNTIME_KEY].stats.connections_active.__getitem__, "ingest"),
        peer_gate=app[RUNTIME_KEY].peer_gate,
        clock=app[RUNTIME_KEY].clock,  # the clock hellos vouch for addresses on (PeerGate.vouch)
        header_timeout_s=config.header_timeout_s,
        # A peer refused again and again: its ingest upgrades get a held-back 429 here, before aiohttp.
        penalty=IngestPenalty(app[RUNTIME_KEY].refusals, app[RUNTIME_KEY].agent_tokens, app[RUNTIME_KEY].stats),
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"nodewatch collector: error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    # Handlers first: whoever reads the banner may send SIGTERM at once, and the default action
    # would kill the process without its clean shutdown (seen in CI as exit -15).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tune_gc()
    announce(config, context is not None, runner.addresses[0][1] if runner.addresses else config.port)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: closing websockets with 1001")
        try:
            async with asyncio.timeout(CLEANUP_DEADLINE_S):
                await runner.cleanup()
        except TimeoutError:
            log.warning("shutdown took over %g s; exiting anyway", CLEANUP_DEADLINE_S)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nodewatch collector`` and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(
        parser, args, os.environ, default_dir=default_data_dir(os.environ, os.geteuid(), Path.home())
    )
    if args.max_subscribers < 1:
        parser.error(f"--max-subscribers: expected an integer >= 1, got {args.max_subscribers!r}")
    try:
        context = ssl_context(config)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"--tls-cert/--tls-key: expected a matching PEM certificate and key, got {exc}")
    silence_apprise_logs()  # before Apprise loads a URL: its log lines show URLs with only the password masked
    try:
        senders = apprise_senders(config.alerts.routes)  # imports Apprise only when routes exist
    except AlertConfigError as exc:
        parser.error(f"--alerts-config: {exc}")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("config: %r", config)  # tokens are repr=False
    return asyncio.run(serve(config, context, senders, FanoutLimits(max_subscribers=args.max_subscribers)))
