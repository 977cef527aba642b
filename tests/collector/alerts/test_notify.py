"""Grouping and timing of notifications: one message for a mass outage, repeats, resolved messages, restarts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from collector.alerts.engine import AlertEngine
from collector.alerts.model import AlertTransition
from collector.alerts.notify import MAX_LISTED, Dispatcher, Notification
from collector.alerts.routes import AlertsConfig, parse_alerts_config, redact_url
from collector.alerts.settings import AlertConfigError

T0 = 1_800_000_000.0
URL = "json://127.0.0.1:9/hook"


def config(**route: Any) -> AlertsConfig:
    """The built-in rules and one route to ``URL`` with ``route``'s keys."""
    return parse_alerts_config({"route": [{"name": "oncall", "urls": [URL], **route}]})


def outage(engine: AlertEngine, count: int, at: float, state: str = "offline") -> list[AlertTransition]:
    """``count`` nodes change liveness at once."""
    return [t for i in range(count) for t in engine.liveness(f"node-{i:03d}", state, at)]  # type: ignore[arg-type]


class TestGrouping:
    def test_a_mass_outage_is_one_notification(self) -> None:
        """500 nodes going offline together send one message listing them, after the group wait."""
        cfg = config(group_wait="30s")
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(outage(engine, 500, T0), T0)
        assert dispatcher.next_due() == T0 + 30
        assert dispatcher.due(T0 + 29) == []
        [sent] = dispatcher.due(T0 + 30)
        assert sent.title == "[FIRING:500] node_offline"
        assert len(sent.firing) == 500
        assert sent.notify_type == "failure"
        assert sent.body.startswith("Firing (500):\n- node_offline on node-000 since 2027-01-15 08:00:00Z")
        assert sent.body.endswith(f"- and {500 - MAX_LISTED} more")

    def test_the_outage_ending_is_one_resolved_message(self) -> None:
        """When the nodes come back, one message says they resolved; then the group is gone."""
        cfg = config(group_wait="30s", group_interval="1m")
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(outage(engine, 50, T0), T0)
        dispatcher.due(T0 + 30)
        dispatcher.add(outage(engine, 50, T0 + 40, "online"), T0 + 40)
        assert dispatcher.next_due() == T0 + 90  # group_interval after the first message
        [sent] = dispatcher.due(T0 + 90)
        assert (sent.title, len(sent.resolved), sent.notify_type) == ("[RESOLVED] node_offline", 50, "success")
        assert dispatcher.next_due() is None

    def test_a_blip_inside_the_group_wait_is_never_sent(self) -> None:
        """An alert that fires and resolves before its group's first message bothers nobody."""
        cfg = config(group_wait="30s")
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(engine.liveness("n", "offline", T0), T0)
        dispatcher.add(engine.liveness("n", "online", T0 + 5), T0 + 5)
        assert dispatcher.due(T0 + 30) == []
        assert dispatcher.next_due() is None

    def test_still_firing_is_repeated(self) -> None:
        """A group still firing is told again every repeat_interval, marked as a repeat."""
        cfg = config(group_wait="0s", repeat_interval="1h")
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(engine.liveness("n", "offline", T0), T0)
        assert not dispatcher.due(T0)[0].repeat
        assert dispatcher.next_due() == T0 + 3600
        [again] = dispatcher.due(T0 + 3600)
        assert (again.repeat, again.title) == (True, "[FIRING:1] node_offline (repeat)")

    def test_group_by_node_splits_groups(self) -> None:
        """group_by = ["node"] sends one message per node instead."""
        cfg = config(group_wait="0s", group_by=["node"])
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(outage(engine, 3, T0), T0)
        assert [n.title for n in dispatcher.due(T0)] == [f"[FIRING:1] node-00{i}" for i in range(3)]

    def test_routes_pick_by_severity_and_label(self) -> None:
        """A critical-only route for team db hears of db nodes going offline, not of web nodes or warnings."""
        cfg = config(group_wait="0s", severities=["critical"], labels={"team": "db"})
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(engine.liveness("db-1", "offline", T0, {"team": "db"}), T0)
        dispatcher.add(engine.liveness("web-1", "offline", T0, {"team": "web"}), T0)
        dispatcher.add(engine.reboot("db-2", T0, {"team": "db"}), T0)
        [sent] = dispatcher.due(T0)
        assert [a.node_id for a in sent.firing] == ["db-1"]


class TestInhibition:
    def test_metric_alerts_of_an_offline_node_stay_silent(self) -> None:
        """A node with a firing CPU alert going offline pages about offline only: no CPU repeat, no CPU resolve."""
        cfg = parse_alerts_config(
            {
                "rule": [{"name": "cpu_high", "condition": "cpu_percent > 90"}],
                "route": [{"name": "r", "urls": [URL], "group_wait": "0s", "repeat_interval": "10m"}],
            }
        )
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(engine.observe("n", {}, {"cpu_percent": 99.0}, T0), T0)
        assert [n.title for n in dispatcher.due(T0)] == ["[FIRING:1] cpu_high"]
        dispatcher.add(engine.liveness("n", "offline", T0 + 60), T0 + 60)
        assert [n.title for n in dispatcher.due(T0 + 60)] == ["[FIRING:1] node_offline"]
        assert dispatcher.due(T0 + 600) == []  # the held CPU alert is not repeated
        assert [n.title for n in dispatcher.due(T0 + 660)] == ["[FIRING:1] node_offline (repeat)"]
        dispatcher.add(engine.observe("n", {}, {"cpu_percent": 5.0}, T0 + 700), T0 + 700)
        # News of a group waits group_interval (5 min) after its last message (T0 and T0 + 660).
        assert [n.title for n in dispatcher.due(T0 + 700)] == ["[RESOLVED] cpu_high"]
        assert dispatcher.due(T0 + 959) == []
        assert [n.title for n in dispatcher.due(T0 + 960)] == ["[RESOLVED] node_offline"]


class TestRestart:
    def test_groups_survive_a_restart_without_a_second_message(self) -> None:
        """A restart keeps what was told: nothing is re-sent, and the repeat comes on schedule."""
        cfg = config(group_wait="0s", repeat_interval="1h")
        engine, dispatcher = AlertEngine(cfg.rules), Dispatcher(cfg.routes)
        dispatcher.add(outage(engine, 5, T0), T0)
        assert len(dispatcher.due(T0)) == 1
        again = Dispatcher(cfg.routes)
        again.restore(json.loads(json.dumps(dispatcher.to_state())))
        assert again.due(T0 + 60) == []
        [repeat] = again.due(T0 + 3600)
        assert (repeat.repeat, len(repeat.firing)) == (True, 5)


class TestRouteConfig:
    def test_secrets_never_reach_a_log_line(self) -> None:
        """A route's repr and its log form show the scheme, and the host only where it is a host, not a token."""
        cfg = config()
        secret = "tgram://123456:SECRET-TOKEN@telegram/42"
        route = parse_alerts_config({"route": [{"name": "t", "urls": [secret]}]}).routes[0]
        assert "SECRET" not in repr(route)
        assert "SECRET" not in route.targets
        assert redact_url(secret) == "tgram://..."
        assert redact_url("slack://TOKEN-A/TOKEN-B/TOKEN-C/#ops") == "slack://..."
        assert redact_url("ntfys://ntfy.sh/secret-topic") == "ntfys://ntfy.sh"
        assert redact_url("json://[::1]:8080/hook") == "json://::1"
        assert cfg.routes[0].targets == "json://127.0.0.1"

    @pytest.mark.parametrize(
        ("route", "message"),
        [
            ({"urls": []}, "alert route 'r': key 'urls': expected at least one Apprise URL"),
            (
                {"urls": ["hooks.slack.com/T0/B0/XXXX"]},
                "key 'urls': expected Apprise URLs like 'ntfys://ntfy.sh/topic', got 'hooks.sl'...",
            ),
            ({"severities": ["page"]}, "key 'severities': expected a list of 'info', 'warning', 'critical'"),
            (
                {"group_by": ["host"]},
                "key 'group_by': expected a list of alertname, severity, node, instance or 'label:<name>'",
            ),
            ({"group_wait": "soon"}, "alert route 'r': key 'group_wait': expected a duration like '5m'"),
            ({"alertnames": ["cpu_high"]}, "key 'alertnames': expected names of enabled rules, got 'cpu_high'"),
            ({"send_resolved": "yes"}, "key 'send_resolved': expected true or false"),
            ({"urlz": []}, "alert route 'r': key 'urlz': expected one of name, urls"),
        ],
    )
    def test_bad_routes_are_refused(self, route: dict[str, Any], message: str) -> None:
        """A bad route stops the collector at start, naming the route and the key, never echoing a URL."""
        with pytest.raises(AlertConfigError) as caught:
            parse_alerts_config({"route": [{"name": "r", "urls": [URL], **route}]})
        assert message in str(caught.value)
        assert "XXXX" not in str(caught.value)


def test_notification_values_are_plain() -> None:
    """A notification is a value: equal inputs, equal notifications (so tests and logs can compare them)."""
    cfg = config(group_wait="0s")
    first, second = (Dispatcher(cfg.routes) for _ in range(2))
    for dispatcher in (first, second):
        dispatcher.add(AlertEngine(cfg.rules).liveness("n", "offline", T0), T0)
    assert first.due(T0) == second.due(T0)
    assert isinstance(first, Dispatcher)
    assert Notification("r", ("x",), (), (), T0).title == "[RESOLVED] x"
