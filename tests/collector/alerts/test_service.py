"""The alerts shell: what the API and /metrics show, reboot and backlog detection, and running without Apprise."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collector.alerts.model import AlertStateError, AlertTransition
from collector.alerts.routes import parse_alerts_config
from collector.alerts.service import AlertService, boot_changed, is_live_sample
from tests.support.messages import heartbeat

T0 = 1_800_000_000.0
REPO = Path(__file__).resolve().parents[3]


class WallClock:
    """A wall clock that moves only when told (the engine stamps alerts with wall time)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("old", "new", "rebooted"),
    [(None, T0, False), (T0, None, False), (T0, T0 + 1, False), (T0, T0 - 4, False), (T0, T0 + 3600, True)],
)
def test_a_reboot_is_a_boot_time_that_moved(old: float | None, new: float | None, rebooted: bool) -> None:
    """A boot time that moved by seconds is a clock adjustment; by an hour, a reboot."""
    assert boot_changed(old, new) is rebooted


def test_replayed_backlog_is_not_news() -> None:
    """A sample replayed minutes late is history: it neither fires nor resolves alerts."""
    assert is_live_sample(T0 - 1, T0, 1.0, None)
    assert is_live_sample(T0 + 9, T0, 1.0, 10.0)  # the agent's clock runs 10 s fast
    assert not is_live_sample(T0 - 300, T0, 1.0, None)


class TestViews:
    def test_api_metrics_and_health_show_the_same_alerts(self) -> None:
        """A node with two full mounts and high CPU shows up in the API, in /metrics and in health alike."""
        config = parse_alerts_config(
            {
                "builtin": {"disk_full": {"for": "0s"}},
                "rule": [{"name": "cpu_high", "condition": "cpu_percent > 90", "for": "1m"}],
            }
        )
        seen: list[AlertTransition] = []
        clock = WallClock()
        service = AlertService(config, {}, on_transitions=seen.extend, wall_clock=clock)
        sample = heartbeat(cpu=99.0, disks={"/": [100, 95, 1], "/var": [100, 99, 0]})
        service.observe("web-1", {}, sample)
        assert [(t.rule, t.instance, t.new) for t in seen] == [
            ("cpu_high", "", "pending"),
            ("disk_full", "/", "firing"),
            ("disk_full", "/var", "firing"),
        ]
        body = service.api_alerts()
        assert body["counts"] == {"pending": 1, "firing": 2, "unknown": 0}
        assert body["alerts"][0] == {
            "alertname": "cpu_high",
            "node_id": "web-1",
            "instance": "",
            "severity": "warning",
            "state": "pending",
            "active_since_at": T0,
            "fired_at": None,
            "value": 99.0,
            "condition": "cpu_percent > 90",
            "summary": "",
        }
        assert service.metric_series() == {
            ("cpu_high", "web-1", "warning", "pending"): 1,
            ("disk_full", "web-1", "warning", "firing"): 2,
        }
        assert service.health()["firing"] == 2
        clock.now += 10
        service.liveness("web-1", "offline", clock.now)
        assert service.api_alerts()["counts"] == {"pending": 0, "firing": 1, "unknown": 3}


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"engine": []},
        {"engine": {"version": 2, "nodes": []}},
        {"engine": {"version": 1, "nodes": [{"node_id": 5}]}},
        {"engine": {"version": 1, "nodes": [{"node_id": "n", "alerts": [{"rule": "node_offline", "state": "on"}]}]}},
        {"engine": {"version": 1, "nodes": []}, "dispatcher": {"groups": [{"route": "r"}]}},
        {"engine": {"version": 1, "nodes": []}, "dispatcher": {"groups": [{"route": "r", "key": 1}]}},
    ],
)
def test_a_damaged_saved_state_is_one_clear_error(state: dict[str, object]) -> None:
    """A saved document of another shape raises AlertStateError (the caller logs it and starts empty)."""
    config = parse_alerts_config({"route": [{"name": "r", "urls": ["json://127.0.0.1/x"]}]})
    service = AlertService(config, {})
    with pytest.raises(AlertStateError):
        service.restore(state)
    assert service.engine.to_state() == {"version": 1, "nodes": []}


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter at the repo root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


class TestWithoutApprise:
    def test_the_collector_runs_alerts_without_apprise(self) -> None:
        """With no routes, alerts work and Apprise is never imported (it is an optional extra)."""
        result = run_python(
            """
            import sys
            sys.modules["apprise"] = None  # as if the 'alerts' extra were not installed
            from collector.alerts.delivery import apprise_senders
            from collector.alerts.routes import parse_alerts_config
            from collector.alerts.service import AlertService
            config = parse_alerts_config({})
            service = AlertService(config, apprise_senders(config.routes))
            print(len(service.liveness("n", "offline", 1.0)))
            """
        )
        assert (result.returncode, result.stdout.strip()) == (0, "1"), result.stderr

    def test_a_route_without_apprise_is_a_clear_error(self) -> None:
        """A route configured without the extra installed says what to install, at start."""
        result = run_python(
            """
            import sys
            sys.modules["apprise"] = None
            from collector.alerts.delivery import apprise_senders
            from collector.alerts.routes import parse_alerts_config
            config = parse_alerts_config({"route": [{"name": "r", "urls": ["json://127.0.0.1/x"]}]})
            try:
                apprise_senders(config.routes)
            except ValueError as exc:
                print(exc)
            """
        )
        assert result.stdout.strip() == (
            "alerts: 1 route(s) configured, but Apprise is not installed:"
            " expected `pip install 'nodewatch[alerts]'` (or remove the [[alerts.route]] tables)"
        ), result.stderr
