"""One node's history over a time range, as both the HTTP API and the subscribe ``history_request`` answer it.

``query_range`` asks the durable store when there is one (it picks the tier,
``RetentionPolicy.choose``, and reads in a worker thread), and otherwise cuts the
range out of the node's in-memory window, as the raw tier. ``range_map`` is the
one map both endpoints send (docs/protocol.md 8.2.1 and 5.10), so JSON and msgpack,
HTTP and websocket, carry the same keys.

``RangeRequests`` is a subscriber's budget for ranged requests: each costs a disk
read, so they are paced by a token bucket, never refused (docs/protocol.md 5.9).

Not here: parsing HTTP query strings (``collector.http_api.history_range``), SQL
(``collector.store``), sockets.
"""

from __future__ import annotations

from typing import Any

from collector.runtime import CollectorRuntime
from collector.store.assemble import empty_result, raw_result
from collector.store.codec import Columns
from collector.store.model import RangeResult
from collector.store.policy import MAX_POINTS
from collector.trust.budget import TokenBucket

# A range without a start covers the hour before its end: what a chart opens with.
DEFAULT_HISTORY_S = 3600.0
# Ranged history requests one viewer may have answered: each may read days of chunks from disk.
# Two a second keeps one viewer under ~10 % of a core even at 1-h buckets over 400 days, and
# ten in a row lets a window open its charts (cpu, memory, network, disk for a few nodes) at once.
RANGE_REQUESTS_PER_S = 2.0
RANGE_REQUEST_BURST = 10


def resolve_range(
    from_at: float | None, to_at: float | None, step_s: float | None, wall: float
) -> tuple[float, float, float]:
    """A request's range with its defaults filled in: to now, from one hour before ``to``, step 0 (finest).

    A start in the future with no end gives an empty range at the start, rather than an error.
    """
    end = to_at if to_at is not None else max(wall, from_at if from_at is not None else wall)
    start = from_at if from_at is not None else max(0.0, end - DEFAULT_HISTORY_S)
    return start, end, step_s if step_s is not None else 0.0


async def query_range(
    runtime: CollectorRuntime, node_id: str, from_at: float, to_at: float, step_s: float
) -> RangeResult:
    """The tiered answer from the store, else the in-memory window as ``raw``; a node nobody knows is one gap."""
    if runtime.store is not None:
        return await runtime.store.query(node_id, from_at, to_at, step_s)
    step = max(step_s, (to_at - from_at) / MAX_POINTS)
    record = runtime.cache.get(node_id)
    if record is None:
        return empty_result(node_id, "raw", from_at, to_at, step)
    points = [p for p in record.history.points() if from_at <= p[1] <= to_at]
    cols = Columns.from_values([p[0] for p in points], [p[1] for p in points], [p[2] for p in points])
    return raw_result(node_id, cols, from_at, to_at, step_s=step, interval_s=record.interval_s)


def range_map(result: RangeResult, server_time_at: float, from_at: float, to_at: float) -> dict[str, Any]:
    """The answer's one map: ``server_time_at``, ``from_at``, ``to_at`` and ``RangeResult.to_map()``."""
    return {"server_time_at": server_time_at, "from_at": from_at, "to_at": to_at, **result.to_map()}


class RangeRequests:
    """One subscriber's budget for ranged history requests: ``take`` or wait ``wait_s``; monotonic ``now``."""

    __slots__ = ("_bucket",)

    def __init__(self, now: float, rate_per_s: float = RANGE_REQUESTS_PER_S, burst: int = RANGE_REQUEST_BURST):
        self._bucket = TokenBucket(rate_per_s, burst, now)

    def take(self, now: float) -> bool:
        """Whether one more ranged request may be answered now (it is then counted)."""
        return self._bucket.take(now)

    def wait_s(self, now: float) -> float:
        """Seconds until the next ranged request may be answered."""
        return self._bucket.retry_after_s(now)
