"""The store's families on ``/metrics``: what health's ``store`` block says, for Prometheus to alert on.

A degraded store stops acks (docs/store.md): agents keep their backlogs, so nothing is lost,
but an operator wants to know before a backlog overflows. Without these families only
``/api/v1/health`` showed it.

Not here: the snapshot that copies ``StoreHealth`` on the event loop (``collector.metrics``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from collector.store.durability import StoreHealth

PREFIX = "nodewatch_collector_store"


def store_families(health: StoreHealth) -> Iterator[Metric]:
    """Gauges of the store's state now, counters of its samples and faults since start."""
    yield GaugeMetricFamily(
        PREFIX + "_degraded", "1 while the store is degraded (acks stopped; see health's store.reason)",
        value=int(health.status != "ok"),
    )  # fmt: skip
    yield GaugeMetricFamily(PREFIX + "_queued_samples", "Samples queued for the writer", value=health.queued)
    yield GaugeMetricFamily(
        PREFIX + "_queue_capacity_samples", "Samples the writer's queue holds before acks stop",
        value=health.queue_capacity,
    )  # fmt: skip
    counters = (
        ("_committed_samples", "Samples committed to disk", health.committed_samples),
        ("_refused_samples", "Samples refused, the queue full (kept in agents' backlogs)", health.refused_samples),
        ("_lost_samples", "Samples accepted but never committed (a dead disk at close)", health.lost_samples),
        ("_commit_failures", "Commits that failed (disk full, I/O error)", health.commit_failures),
        ("_writer_restarts", "Writer processes restarted after one died", health.restarts),
    )  # fmt: skip
    for suffix, text, value in counters:
        yield CounterMetricFamily(PREFIX + suffix, text, value=value)
