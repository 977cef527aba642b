"""``GET /api/v1/alerts`` and ``GET /api/v1/alerts/history``: what is alerting now, and what alerted when.

Both need a viewer token (when the collector has viewer tokens), like the node API.
``/alerts`` answers every pending, firing and unknown alert (``AlertService.api_alerts``);
``/alerts/history?from=&to=&limit=`` answers the transitions whose ``changed_at`` lies in
``[from, to]`` (epoch seconds; default the last 24 hours), oldest first, at most ``limit``
(default 1,000, at most 10,000) with ``truncated`` saying whether the limit cut them.
docs/alerts.md section 9.7 shows both bodies.

Not here: the alerts themselves (``collector.alerting``), the other endpoints
(``collector.http_api``).
"""

from __future__ import annotations

import math

from aiohttp import web

from collector.http_api import json_error, token_ok, unauthorized
from collector.runtime import CollectorRuntime
from shared.limits import NODES_PATH

# Next to /api/v1/nodes; shared/limits.py holds the other paths (move these there with the next protocol edit).
ALERTS_PATH = NODES_PATH.rsplit("/", 1)[0] + "/alerts"
ALERTS_HISTORY_PATH = ALERTS_PATH + "/history"
DEFAULT_HISTORY_S = 24 * 3600.0  # a day: what an operator asks first after a night
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000  # every event the collector keeps (collector.alerts.statefile.MAX_EVENTS)


class AlertsApi:
    """The two alert endpoints of one collector."""

    def __init__(self, runtime: CollectorRuntime) -> None:
        self.runtime = runtime

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register both endpoints."""
        router.add_get(ALERTS_PATH, self.alerts)
        router.add_get(ALERTS_HISTORY_PATH, self.history)

    async def alerts(self, request: web.Request) -> web.Response:
        """``GET /api/v1/alerts``: every pending, firing and unknown alert, with counts."""
        runtime = self.runtime
        if not token_ok(request, runtime.viewer_tokens):
            return unauthorized(runtime, request, "http", "viewer")
        return web.json_response(runtime.alerts.service.api_alerts())

    async def history(self, request: web.Request) -> web.Response:
        """``GET /api/v1/alerts/history?from=&to=&limit=``: past transitions, oldest first."""
        runtime = self.runtime
        if not token_ok(request, runtime.viewer_tokens):
            return unauthorized(runtime, request, "http", "viewer")
        query = request.query
        to_at = _number(query.get("to"))
        to_at = runtime.wall_clock() if to_at is None else to_at
        from_at = _number(query.get("from"))
        from_at = to_at - DEFAULT_HISTORY_S if from_at is None else from_at
        limit = _number(query.get("limit"))
        limit = DEFAULT_LIMIT if limit is None else limit
        if not (math.isfinite(from_at) and math.isfinite(to_at) and 0 <= from_at < to_at):
            shown = f"from={query.get('from', '')[:40]!r}, to={query.get('to', '')[:40]!r}"
            return json_error(400, "bad_request", f"expected from < to, epoch seconds, got {shown}")
        if not (math.isfinite(limit) and limit == int(limit) and 1 <= limit <= MAX_LIMIT):
            return json_error(400, "bad_request", f"expected limit=1..{MAX_LIMIT}, got {query.get('limit', '')[:40]!r}")
        events, truncated = runtime.alerts.history(from_at, to_at, int(limit))
        return web.json_response({"from_at": from_at, "to_at": to_at, "truncated": truncated, "events": events})


def _number(text: str | None) -> float | None:
    """A query parameter as a float; NaN (refused by the caller) for one that is not a number."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return math.nan
