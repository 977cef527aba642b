"""The collector's settings, as one frozen dataclass built by ``collector.cli.main`` (or by tests).

This module only holds values and their defaults; it reads no files and no
environment (that is ``main``'s job) and validates nothing a peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from collector.alerts.routes import AlertsConfig, parse_alerts_config
from collector.ingest_session import ACK_INTERVAL_S
from collector.nodes_listing import DEFAULT_LISTING_SEND_TIMEOUT_S, DEFAULT_LISTING_WAIT_S, DEFAULT_MAX_LISTINGS
from shared.codec import INGEST_LIMITS, SUBSCRIBE_REQUEST_LIMITS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_FORGET_AFTER_S = 24 * 3600.0
DEFAULT_MAX_NODES = 10_000


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Everything ``create_app`` and the CLI need; every field has a default usable in tests."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Bearer tokens; empty means "no auth on that side". repr=False so a logged
    # config never shows them.
    agent_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    viewer_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    # The admin API's tokens (collector.admin_api); empty: the admin endpoints answer 403.
    admin_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Where the durable store lives (collector.store, docs/store.md); None keeps everything in
    # memory only, as tests and the store-off bench do. Only the CLI defaults to a data dir.
    data_dir: Path | None = None
    # NORMAL: an acked sample survives a process crash; FULL also fsyncs each commit (power loss).
    store_sync: Literal["NORMAL", "FULL"] = "NORMAL"
    # Alert rules and routes (docs/alerts.md): the [alerts] table of --alerts-config FILE (named
    # here for the log); without one, the built-in rules and no routes. repr=False: rules are long.
    alerts_config: Path | None = None
    alerts: AlertsConfig = field(default_factory=lambda: parse_alerts_config({}), repr=False)
    # Offline nodes are kept this long, then removed from the cache and viewers.
    forget_after_s: float = DEFAULT_FORGET_AFTER_S
    # New node ids beyond this count are refused with close code 4503.
    max_nodes: int = DEFAULT_MAX_NODES
    # Past max_nodes + this many open connections, new ingest connections get HTTP 503
    # at accept time (collector.admission); health, API and subscribers still get in.
    # The margin leaves room for viewers, probes, reconnects and 4503 refusals.
    connection_margin: int = 256
    # The protocol's hello timeout (docs/protocol.md: 10 s).
    hello_timeout_s: float = 10.0
    # A new connection sends its whole request head within this long, or gets 408 and is closed
    # (collector.admission; nginx's client_header_timeout). Only behind the CLI's AdmissionSite.
    header_timeout_s: float = 10.0
    # History ring: 15 minutes at the agent's rate, but never more than
    # history_max_points points (40 bytes each), so a node costs at most
    # 900 * 40 = 36,000 bytes of samples whatever its rate.
    history_window_s: float = 15 * 60.0
    history_max_points: int = 900
    # Points per node in a subscriber's first snapshot (the protocol says <= 60).
    snapshot_history_points: int = 60
    # A subscriber gets at most one update per this interval (protocol: 100 ms).
    flush_interval_s: float = 0.1
    # GET /api/v1/nodes listings rendered or written at once (collector.nodes_listing.ListingGate): one more
    # waits up to listing_wait_s for a slot, then gets 503; a write the client does not take within
    # listing_send_timeout_s drops its connection.
    max_listings: int = DEFAULT_MAX_LISTINGS
    listing_wait_s: float = DEFAULT_LISTING_WAIT_S
    listing_send_timeout_s: float = DEFAULT_LISTING_SEND_TIMEOUT_S
    # One send to a subscriber may take this long; after that it is "too slow" (4429).
    send_timeout_s: float = 10.0
    # A heartbeat is acked at the latest this long after it arrived (collector.ingest_session).
    ack_interval_s: float = ACK_INTERVAL_S
    # Websocket ping interval for viewers; finds dead peers (aiohttp closes after no pong in half of it).
    # Agents are not pinged: their heartbeats prove them alive (CollectorRuntime.drop_offline_agents).
    ws_heartbeat_s: float = 30.0
    # aiohttp's own cap on a websocket message, above the protocol's limit (shared.codec, docs/protocol.md
    # 2.2 and 7): a frame over the limit but under the cap reaches the codec and gets an Error naming the
    # limit and its size, then 1009 frame_too_large; one of the cap's size or more is refused by aiohttp from
    # its declared length, before it is buffered, with a bare 1009. Twice the ingest limit (131,072 bytes)
    # gives an agent a heartbeat or two of mounts too many that precise answer, and costs a connection at
    # most 128 KiB, once (unfinished messages are under collector.trust.parked's budget). Subscribe requests
    # are ~40 bytes; four times their limit (16,384 bytes) answers any plausible mistake precisely.
    ingest_max_msg_bytes: int = 2 * INGEST_LIMITS.max_frame_bytes
    subscribe_max_msg_bytes: int = 4 * SUBSCRIBE_REQUEST_LIMITS.max_frame_bytes
    # How long we wait for the peer's close frame after sending ours.
    close_timeout_s: float = 1.0
    # Event-loop lag probe; health reports "degraded" (503) above lag_unhealthy_s.
    lag_probe_interval_s: float = 0.25
    lag_unhealthy_s: float = 1.0
    # Listen backlog: thousands of agents may reconnect at once after a restart.
    backlog: int = 4096
    # aiohttp's graceful-shutdown wait; websockets are closed first, so 1.5 s is plenty.
    shutdown_timeout_s: float = 1.5
