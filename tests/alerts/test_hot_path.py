"""The per-heartbeat short cuts of alert evaluation change no alert: quiet keys, live nodes, counters, mount keys.

``AlertEngine.observe`` skips a key whose value lies inside its quiet band unless the
key has a live alert or is a counter on a node with live alerts; ``Flattener`` reuses
each mount's key; ``has_details`` answers most heartbeats from the fields they were
given. These tests pin what a user sees through each of those short cuts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.alerts.engine import AlertEngine
from collector.alerts.model import AlertTransition
from collector.alerts.rules import parse_rules
from collector.alerts.samples import Flattener
from collector.node_metrics import has_details
from tests.support.messages import heartbeat

T0 = 1_800_000_000.0
WEB: Mapping[str, str] = {"role": "web"}
CPU = {"name": "cpu_high", "condition": "cpu_percent > 90", "for": "0s", "clear_threshold": 80}
SKEWED = {"clock_skew_abs_s": 5.0}  # the built-in clock_skew rule (for 5m) goes pending: the node is live


def engine(*rules: dict[str, Any]) -> AlertEngine:
    """The built-ins, disk_full without a ``for``, and ``rules``."""
    return AlertEngine(parse_rules({"rule": list(rules), "builtin": {"disk_full": {"for": "0s"}}}))


def moves(transitions: list[AlertTransition]) -> list[tuple[str, str, str, str]]:
    """Transitions as (rule, instance, old, new)."""
    return [(t.rule, t.instance, t.old, t.new) for t in transitions]


class TestLiveNode:
    def test_a_quiet_value_clears_its_own_alert_beside_another_live_one(self) -> None:
        """A full mount that empties resolves even while another mount of the node is still full."""
        eng = engine()
        full = {"disk_fullness_percent:/": 99.0, "disk_fullness_percent:/var": 99.0}
        assert sorted(moves(eng.observe("n", WEB, full, T0))) == [
            ("disk_full", "/", "inactive", "firing"),
            ("disk_full", "/var", "inactive", "firing"),
        ]
        emptied = {"disk_fullness_percent:/": 99.0, "disk_fullness_percent:/var": 10.0}
        assert moves(eng.observe("n", WEB, emptied, T0 + 10)) == [("disk_full", "/var", "firing", "resolved")]

    def test_a_quiet_value_of_a_firing_alert_inside_the_clear_band_keeps_it(self) -> None:
        """Between the clear threshold and the threshold a firing alert stays firing, and its value is shown."""
        eng = engine(CPU)
        eng.observe("n", WEB, {"cpu_percent": 95.0, **SKEWED}, T0)
        assert eng.observe("n", WEB, {"cpu_percent": 85.0, **SKEWED}, T0 + 10) == []
        cpu = [alert for alert in eng.alerts() if alert.rule.name == "cpu_high"]
        assert [(alert.state, alert.value) for alert in cpu] == [("firing", 85.0)]

    def test_another_key_breaking_on_a_live_node_starts_its_alert(self) -> None:
        """A node with a pending alert still alerts on a second metric that crosses its threshold."""
        eng = engine(CPU)
        assert moves(eng.observe("n", WEB, {"cpu_percent": 10.0, **SKEWED}, T0)) == [
            ("clock_skew", "", "inactive", "pending")
        ]
        assert moves(eng.observe("n", WEB, {"cpu_percent": 99.0, **SKEWED}, T0 + 10)) == [
            ("cpu_high", "", "inactive", "firing")
        ]

    def test_quiet_keys_of_a_live_node_start_nothing(self) -> None:
        """Values inside every band on a node with a live alert change no alert, sample after sample."""
        eng = engine(CPU)
        eng.observe("n", WEB, {"cpu_percent": 10.0, "disk_fullness_percent:/": 50.0, **SKEWED}, T0)
        for step in range(1, 5):
            values = {"cpu_percent": 10.0 + step, "disk_fullness_percent:/": 50.0, **SKEWED}
            assert eng.observe("n", WEB, values, T0 + 10 * step) == []
        assert [alert.rule.name for alert in eng.alerts()] == ["clock_skew"]

    def test_a_counter_rise_on_a_live_node_fires(self) -> None:
        """Samples dropped while another alert is pending still fire agent_dropped_samples."""
        eng = engine()
        eng.observe("n", WEB, {"dropped_samples": 3, **SKEWED}, T0)
        assert eng.observe("n", WEB, {"dropped_samples": 3, **SKEWED}, T0 + 10) == []
        assert moves(eng.observe("n", WEB, {"dropped_samples": 5, **SKEWED}, T0 + 20)) == [
            ("agent_dropped_samples", "", "inactive", "firing")
        ]

    def test_a_counter_rise_just_after_the_node_goes_quiet_fires(self) -> None:
        """The baseline a live node's counter kept is the one its next quiet sample compares with."""
        eng = engine()
        eng.observe("n", WEB, {"dropped_samples": 3, **SKEWED}, T0)
        eng.observe("n", WEB, {"dropped_samples": 4, "clock_skew_abs_s": 0.0}, T0 + 10)
        alerts = {alert.rule.name: alert.state for alert in eng.alerts()}
        assert alerts == {"agent_dropped_samples": "firing"}


class TestFlattener:
    def test_mount_keys_are_the_same_on_every_heartbeat(self) -> None:
        """A mount's fullness comes under the same key on the second heartbeat as on the first, and per node."""
        flatten = Flattener(["disk_fullness_percent", "disk_used_bytes"])
        first = flatten(heartbeat(disks={"/": [100, 50, 50], "/srv": [100, 10]}))
        second = flatten(heartbeat(disks={"/": [100, 60, 40], "/srv": [100, 20]}))
        assert first == {
            "disk_fullness_percent:/": 50.0,
            "disk_used_bytes:/": 50.0,
            "disk_fullness_percent:/srv": 10.0,
            "disk_used_bytes:/srv": 10.0,
        }
        assert list(second) == list(first)
        assert second["disk_fullness_percent:/"] == 60.0


class TestHasDetails:
    def test_a_heartbeat_without_slow_fields_has_no_details(self) -> None:
        """A fast-tier heartbeat, or one whose slow fields are all explicitly null, carries no details."""
        assert not has_details(heartbeat())
        assert not has_details(heartbeat(tcp_established=None, gpus=None))

    def test_any_one_slow_field_is_details(self) -> None:
        """One slow-tier field, even a zero, is a fresh slow reading."""
        assert has_details(heartbeat(tcp_established=0))
        assert has_details(heartbeat(cpu_mode_percent={"user": 1.0}))
