"""The collector's own counters, and the Prometheus exposition of them and of every node.

One ``CollectorStats`` per app holds plain integers bumped by the handlers. A
scrape is two steps. ``take_snapshot`` copies what it needs from the
``NodeCache`` and the stats into plain rows: it runs on the event loop, where
the cache lives, and is cheap. ``render_metrics`` builds the metric families
from that snapshot (a prometheus-client custom collector, so there is no Gauge
object per node to create, update or leak) and the text exposition: it touches
nothing shared, so the handler runs it in a thread. Done on the loop, both
together stalled ingest and every viewer for about a second at 10,000 nodes.

Node labels (``facts.labels``, the agent's ``--label``) are on ``nodewatch_node_info`` only, as
``label_<key>`` after the facts' labels: the prefix keeps an operator's ``hostname`` or ``node``
label from colliding with ours, and every key is already a valid label name (shared.limits).
Putting them on every series would multiply the cardinality a dashboard joins on anyway
(``* on(node) group_left(label_role) nodewatch_node_info``, node_exporter's own info idiom).

Not here: the HTTP handler (``collector.app``) and no global registry.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.alerts.service import AlertService
from collector.cache import NodeCache, stored_sample
from collector.node_metrics import (
    NodeLiveness,
    NodeView,
    SlowDetails,
    details_fresh,
    escape_label,
    has_details,
    node_exposition,
)
from collector.store.durability import StoreHealth
from collector.store_metrics import store_families
from shared.messages import Heartbeat

ENDPOINTS = ("ingest", "subscribe", "http")

# /api/v1/health's ``fanout`` block as metric families: (key there, name after nodewatch_collector_, help).
# Counters first, then the gauges (values now); the keys are ``collector.http_api.fanout_health``'s.
FANOUT_COUNTERS = (
    ("flushes", "fanout_flushes", "Updates built for subscribers, one per flush"),
    (
        "frames_packed",
        "fanout_frames_packed",
        "Update encodings: one msgpack (and one JSON with a JSON viewer) per flush",
    ),
    ("frames_queued", "fanout_frames_queued", "Update frames queued, once per subscriber"),
    ("snapshot_entries_packed", "fanout_snapshot_entries_packed", "Node entries packed for snapshots"),
    ("lagged", "fanout_lagged", "Times a subscriber fell 2 MiB behind and started getting coalesced updates"),
    ("coalesced_updates", "fanout_coalesced_updates", "Updates built for one lagging subscriber from the latest state"),
    ("rejoined", "fanout_rejoined", "Times a lagging subscriber caught up and got the shared updates again"),
    ("cut_unsent_bytes", "fanout_cut_unsent", "Subscribers closed 4429 for not reading (16 MiB passed, no byte sent)"),
    ("refused_full", "fanout_refused_full", "Subscribe requests answered 503 at --max-subscribers"),
)
FANOUT_GAUGES = (
    ("subscribers_lagging", "fanout_subscribers_lagging", "Subscribers getting coalesced updates now"),
    ("unsent_bytes_max", "fanout_max_unsent_bytes", "The most unsent bytes any subscriber has now"),
    ("max_subscribers", "fanout_max_subscribers", "Open subscribers allowed (--max-subscribers)"),
)


@dataclass(slots=True)
class CollectorStats:
    """Counters the handlers bump; read by /metrics and /api/v1/health."""

    heartbeats_received: int = 0
    heartbeats_duplicate: int = 0
    updates_sent: int = 0
    updates_coalesced: int = 0
    updates_dropped: int = 0
    # (endpoint, reason) -> count
    protocol_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    # endpoint -> count
    connections_total: Counter[str] = field(default_factory=Counter)
    connections_active: Counter[str] = field(default_factory=Counter)
    auth_failures: Counter[str] = field(default_factory=Counter)
    # A peer refused again and again (collector.trust.penalty): cooldowns armed, upgrades answered 429 in one.
    penalties_armed: int = 0
    penalized_upgrades: int = 0


class ListingCounts(NamedTuple):
    """``GET /api/v1/nodes`` listings (``collector.nodes_listing.ListingGate``): held now, refused, cut."""

    active: int
    refused: int
    cut: int


@dataclass(frozen=True, slots=True)
class NodeRow:
    """What /metrics shows of one node, copied from its record at scrape time."""

    liveness: NodeLiveness
    interval_s: float
    sample_frame: bytes | None  # decoded off the loop (collector.cache.stored_sample)
    sample_model: Heartbeat | None
    details: tuple[bytes, float] | None  # the last slow-tier frame and its sampled_at (SlowDetails)

    def view(self) -> NodeView:
        """Decode the samples (in the render thread) into what the families read."""
        sample = stored_sample(self.sample_frame, self.sample_model)
        details = None
        if sample is not None and has_details(sample):
            details = sample
        elif sample is not None and self.details is not None:
            frame, details_at = self.details
            if details_fresh(details_at, sample.sampled_at, self.interval_s):
                details = stored_sample(frame, None)
        return NodeView(self.liveness, sample, details)


@dataclass(frozen=True, slots=True)
class AlertsRow:
    """The alerts part of a scrape: ``AlertService.metric_series()`` and ``health()``."""

    series: dict[tuple[str, str, str, str], int]
    health: dict[str, int]


@dataclass(frozen=True, slots=True)
class ScrapeSnapshot:
    """Everything one scrape renders, detached from the live cache and stats."""

    nodes: list[NodeRow]
    counts: dict[str, int]
    stats: CollectorStats
    alerts: AlertsRow | None = None
    fanout: Mapping[str, int] | None = None  # /api/v1/health's fanout block, copied
    listings: ListingCounts | None = None
    store: StoreHealth | None = None  # None: --ephemeral


def take_snapshot(
    cache: NodeCache,
    stats: CollectorStats,
    alerts: AlertService | None = None,
    details: SlowDetails | None = None,
    *,
    fanout: Mapping[str, int] | None = None,
    listings: ListingCounts | None = None,
    store: StoreHealth | None = None,
) -> ScrapeSnapshot:
    """Copy the scrape's inputs; call it where the cache is mutated (the event loop).

    ``fanout`` is health's ``fanout`` block (``collector.http_api.fanout_health``), read where the
    fan-out keeps its counters.
    """
    records = cache.nodes()
    if details is not None:
        details.prune(r.node_id for r in records)
    rows = [
        NodeRow(
            liveness=NodeLiveness.of(node),
            interval_s=node.interval_s,
            sample_frame=node.last_sample_frame,
            sample_model=node.last_sample_model,
            details=None if details is None else details.get(node.node_id),
        )
        for node in records
    ]
    alerts_row = None if alerts is None else AlertsRow(series=alerts.metric_series(), health=alerts.health())
    return ScrapeSnapshot(
        nodes=rows,
        counts=cache.counts(),
        stats=copy.deepcopy(stats),
        alerts=alerts_row,
        fanout=None if fanout is None else dict(fanout),
        listings=listings,
        store=store,
    )


def render_metrics(snapshot: ScrapeSnapshot) -> bytes:
    """The Prometheus text exposition of ``snapshot``; touches nothing shared, so it may run in a thread."""
    nodes = labelled_info(node_exposition(row.view() for row in snapshot.nodes), snapshot.nodes)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodewatchMetrics(snapshot))
    return nodes.encode() + generate_latest(registry)


INFO_TYPE_LINE = "# TYPE nodewatch_node_info gauge\n"


def labelled_info(text: str, rows: list[NodeRow]) -> str:
    """``text`` with each node's labels added to its ``nodewatch_node_info`` series, as ``label_<key>``.

    ``node_exposition`` writes one info line per node, in ``rows`` order; this touches only that
    block, and only when some node has labels.
    """
    if not any(row.liveness.facts.labels for row in rows):
        return text
    start = text.index(INFO_TYPE_LINE) + len(INFO_TYPE_LINE)
    end = text.find("\n# HELP ", start) + 1 or len(text)
    lines = text[start:end].splitlines(keepends=True)
    if len(lines) != len(rows):
        raise RuntimeError(f"expected one nodewatch_node_info line per node ({len(rows)}), got {len(lines)}")
    out = []
    for line, row in zip(lines, rows, strict=True):
        labels = row.liveness.facts.labels
        if labels:
            brace = line.rindex("}")  # the last one: a label value may hold a brace, the sample value cannot
            extra = "".join(f',label_{key}="{escape_label(value)}"' for key, value in sorted(labels.items()))
            out.append(line[:brace] + extra + line[brace:])
        else:
            out.append(line)
    return text[:start] + "".join(out) + text[end:]


class NodewatchMetrics(Collector):
    """The fleet-wide families (counts, alerts, the collector's own counters) of one scrape's snapshot.

    The per-node families, most of the exposition, are written by ``node_exposition``.
    """

    def __init__(self, snapshot: ScrapeSnapshot) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        """Nothing up front: families depend on the fleet, so registration must not call collect()."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield node counts, alerts, then the collector's own counters."""
        counts = GaugeMetricFamily("nodewatch_nodes", "Nodes per liveness state", labels=["state"])
        for state_name, count in self._snapshot.counts.items():
            counts.add_metric([state_name], count)
        yield counts
        yield from self._alert_metrics()
        yield from self._own_metrics()
        yield from self._fanout_metrics()
        yield from self._listing_metrics()
        if self._snapshot.store is not None:
            yield from store_families(self._snapshot.store)

    def _alert_metrics(self) -> Iterator[Metric]:
        alerts = self._snapshot.alerts
        if alerts is None:
            return
        family = GaugeMetricFamily(
            "nodewatch_alerts",
            "Live alerts (pending, firing, unknown), like Prometheus's ALERTS; the value counts instances",
            labels=["alertname", "node", "severity", "state"],
        )
        for labels, count in sorted(alerts.series.items()):
            family.add_metric(list(labels), count)
        yield family
        sent = CounterMetricFamily("nodewatch_alert_notifications", "Alert notifications by outcome", labels=["result"])
        for result in ("delivered", "failed", "dropped"):
            sent.add_metric([result], alerts.health.get(f"notifications_{result}", 0))
        yield sent
        yield GaugeMetricFamily(
            "nodewatch_alert_notifications_queued",
            "Alert notifications waiting to be sent",
            value=alerts.health.get("notifications_queued", 0),
        )

    def _own_metrics(self) -> Iterator[Metric]:
        s = self._snapshot.stats
        p = "nodewatch_collector_"
        yield CounterMetricFamily(p + "heartbeats_received", "Heartbeats received", value=s.heartbeats_received)
        yield CounterMetricFamily(
            p + "heartbeats_duplicate",
            "Heartbeats ignored as duplicates (seq already held)",
            value=s.heartbeats_duplicate,
        )
        yield CounterMetricFamily(p + "updates_sent", "Update messages sent to subscribers", value=s.updates_sent)
        yield CounterMetricFamily(
            p + "updates_coalesced", "Node changes merged into one already pending", value=s.updates_coalesced
        )
        yield CounterMetricFamily(
            p + "updates_dropped", "Pending node changes discarded with a closed subscriber", value=s.updates_dropped
        )
        errors = CounterMetricFamily(
            p + "protocol_errors", "Connections closed for bad peer input, by reason", labels=["endpoint", "reason"]
        )
        for (endpoint, reason), count in sorted(s.protocol_errors.items()):
            errors.add_metric([endpoint, reason], count)
        yield errors
        total = CounterMetricFamily(p + "connections", "Connections accepted, by endpoint", labels=["endpoint"])
        active = GaugeMetricFamily(p + "connections_active", "Open websocket connections", labels=["endpoint"])
        auth = CounterMetricFamily(p + "auth_failures", "Requests refused with 401, by endpoint", labels=["endpoint"])
        for endpoint in ENDPOINTS:
            total.add_metric([endpoint], s.connections_total[endpoint])
            active.add_metric([endpoint], s.connections_active[endpoint])
            auth.add_metric([endpoint], s.auth_failures[endpoint])
        yield from (total, active, auth)
        yield CounterMetricFamily(
            p + "ingest_penalties",
            "Refusal cooldowns armed or extended for a peer address and agent token (4430 again and again)",
            value=s.penalties_armed,
        )
        yield CounterMetricFamily(
            p + "ingest_penalized",
            "Ingest upgrades answered 429 within a refusal cooldown, before any websocket or hello",
            value=s.penalized_upgrades,
        )

    def _fanout_metrics(self) -> Iterator[Metric]:
        fanout = self._snapshot.fanout
        if fanout is None:
            return
        p = "nodewatch_collector_"
        for key, name, text in FANOUT_COUNTERS:
            yield CounterMetricFamily(p + name, text, value=fanout.get(key, 0))
        for key, name, text in FANOUT_GAUGES:
            yield GaugeMetricFamily(p + name, text, value=fanout.get(key, 0))

    def _listing_metrics(self) -> Iterator[Metric]:
        listings = self._snapshot.listings
        if listings is None:
            return
        p = "nodewatch_collector_listings"
        yield GaugeMetricFamily(
            p + "_active", "GET /api/v1/nodes listings being rendered or written now", value=listings.active
        )
        yield CounterMetricFamily(
            p + "_refused",
            "Listings answered 503: every listing slot stayed taken for the wait",
            value=listings.refused,
        )
        yield CounterMetricFamily(
            p + "_cut", "Listings dropped: the client took no write within the send timeout", value=listings.cut
        )
