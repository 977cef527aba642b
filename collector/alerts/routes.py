"""Notification routes and the whole ``[alerts]`` config: read from TOML, checked at start.

A route sends the alerts it matches (by severity, rule name, node id glob and node label
glob) to one or more Apprise URLs, grouped by ``group_by`` and timed by ``group_wait``,
``group_interval`` and ``repeat_interval`` (Alertmanager's three timers, same meanings).
``load_alerts_config`` reads a TOML file's ``[alerts]`` table into rules and routes.

URLs carry secrets (tokens, passwords): ``Route`` keeps them out of its repr, and
``redact_url`` is the only way one reaches a log line. Not here: grouping itself
(``collector.alerts.notify``) or sending (``collector.alerts.delivery``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from collector.alerts.rules import SEVERITIES, Rule, Severity, parse_rules
from collector.alerts.settings import AlertConfigError, TableReader, label_selector_matches, node_selector_matches

_ROUTE_KEYS = (
    "name",
    "urls",
    "severities",
    "alertnames",
    "nodes",
    "labels",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "send_resolved",
)
_ALERTS_KEYS = ("builtin", "rule", "route")
# Apprise URLs are "<scheme>://..." (json://, ntfys://, mailtos://, tgram://...).
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")
# group_by fields besides node labels (written "label:<name>").
GROUP_FIELDS = ("alertname", "severity", "node", "instance")


def redact_url(url: str) -> str:
    """``scheme://host`` of an Apprise URL: what a log line may show; paths and credentials hold secrets.

    The host is shown only when it looks like one (a dot, an IPv6 colon, or ``localhost``):
    several Apprise schemes put a token where the host goes (``slack://TokenA/TokenB/TokenC``,
    ``tgram://bot_id:token/chat``), and those show as ``scheme://...``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = host if "." in host or ":" in host or host == "localhost" else "..."
    return f"{parts.scheme}://{shown}"


@dataclass(frozen=True, slots=True)
class Route:
    """One checked route; ``urls`` never appear in its repr."""

    name: str
    urls: tuple[str, ...] = field(repr=False)
    severities: tuple[Severity, ...] = SEVERITIES
    alertnames: tuple[str, ...] = ()  # empty: every rule
    nodes: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0
    send_resolved: bool = True

    def matches(self, rule: str, severity: str, node_id: str, labels: Mapping[str, str]) -> bool:
        """Whether an alert of ``rule`` on this node goes to this route."""
        return (
            severity in self.severities
            and (not self.alertnames or rule in self.alertnames)
            and node_selector_matches(self.nodes, (), node_id)
            and label_selector_matches(self.labels, labels)
        )

    @property
    def targets(self) -> str:
        """The route's URLs as a log line may show them."""
        return ", ".join(redact_url(url) for url in self.urls)


def parse_route(table: Mapping[str, Any]) -> Route:
    """One ``[[alerts.route]]`` table; raises ``AlertConfigError`` naming the route and the key."""
    reader = TableReader("alert route", table, _ROUTE_KEYS)
    name = reader.name_key()
    urls = reader.strings("urls")
    if not urls:
        reader.fail("urls", "expected at least one Apprise URL like 'ntfys://ntfy.sh/topic'", "none")
    for url in urls:
        if not _URL.match(url):
            # Show only the scheme-looking start: the rest of a URL may be a secret.
            reader.fail("urls", "expected Apprise URLs like 'ntfys://ntfy.sh/topic'", f"{url[:8]!r}...")
    severities = reader.strings("severities", SEVERITIES)
    for severity in severities:
        if severity not in SEVERITIES:
            reader.fail("severities", f"expected a list of {', '.join(map(repr, SEVERITIES))}", repr(severity))
    group_by = reader.strings("group_by", ("alertname",))
    for item in group_by:
        if item not in GROUP_FIELDS and not (item.startswith("label:") and len(item) > len("label:")):
            reader.fail("group_by", f"expected a list of {', '.join(GROUP_FIELDS)} or 'label:<name>'", repr(item))
    return Route(
        name=name,
        urls=urls,
        severities=cast("tuple[Severity, ...]", severities),
        alertnames=reader.strings("alertnames"),
        nodes=reader.globs("nodes"),
        labels=reader.label_map("labels"),
        group_by=group_by,
        group_wait_s=reader.duration("group_wait", "30s"),
        group_interval_s=reader.duration("group_interval", "5m"),
        repeat_interval_s=reader.duration("repeat_interval", "4h"),
        send_resolved=reader.boolean("send_resolved", True),
    )


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The checked ``[alerts]`` table: every rule (built-ins first) and every route."""

    rules: tuple[Rule, ...]
    routes: tuple[Route, ...] = ()


def parse_alerts_config(alerts: Mapping[str, Any]) -> AlertsConfig:
    """Rules and routes from the ``[alerts]`` table; route names unique, route rule names known."""
    for key in alerts:
        if key not in _ALERTS_KEYS:
            raise AlertConfigError(
                f"alerts: key {key!r}: expected one of {', '.join(_ALERTS_KEYS)}, got an unknown key"
            )
    rules = parse_rules(alerts)
    tables = alerts.get("route", [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise AlertConfigError(f"alerts: key 'route': expected [[alerts.route]] tables, got {tables!r:.80}")
    routes = [parse_route(table) for table in tables]
    names = {rule.name for rule in rules}
    seen: set[str] = set()
    for route in routes:
        if route.name in seen:
            raise AlertConfigError(f"alert route {route.name!r}: key 'name': expected a unique name, got it twice")
        seen.add(route.name)
        for alertname in route.alertnames:
            if alertname not in names:
                raise AlertConfigError(
                    f"alert route {route.name!r}: key 'alertnames': expected names of enabled rules, got {alertname!r}"
                )
    return AlertsConfig(rules=rules, routes=tuple(routes))


def load_alerts_config(path: Path) -> AlertsConfig:
    """The ``[alerts]`` table of a TOML file (absent: the built-in rules, no routes)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AlertConfigError(f"{path}: expected TOML, got {exc}") from exc
    alerts = document.get("alerts", {})
    if not isinstance(alerts, Mapping):
        raise AlertConfigError(f"{path}: key 'alerts': expected a table, got {alerts!r:.80}")
    return parse_alerts_config(alerts)
