"""The pure alert engine: for, hysteresis, unknown while offline, reboots, per-mount alerts and restarts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from collector.alerts.engine import AlertEngine
from collector.alerts.judge import ABSENT_SAMPLES_TO_CLEAR
from collector.alerts.model import AlertTransition
from collector.alerts.rules import parse_rules
from collector.alerts.samples import Flattener
from tests.support.messages import heartbeat

T0 = 1_800_000_000.0  # wall time: the engine's clock survives restarts
WEB: Mapping[str, str] = {"role": "web"}


def engine(*rules: dict[str, Any], builtin: dict[str, Any] | None = None) -> AlertEngine:
    """An engine with the built-ins (as overridden) and ``rules``."""
    return AlertEngine(parse_rules({"rule": list(rules), "builtin": builtin or {}}))


def moves(transitions: list[AlertTransition]) -> list[tuple[str, str, str, str]]:
    """Transitions as (rule, instance, old, new), the way a reader checks them."""
    return [(t.rule, t.instance, t.old, t.new) for t in transitions]


CPU = {"name": "cpu_high", "condition": "cpu_percent > 90", "for": "1m", "clear_threshold": 80}


class TestFor:
    def test_a_one_sample_spike_never_fires(self) -> None:
        """A value above the threshold for less than `for` is pending, then gone: nobody is paged."""
        eng = engine(CPU)
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 99.0}, T0)) == [("cpu_high", "", "inactive", "pending")]
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 20.0}, T0 + 10)) == [
            ("cpu_high", "", "pending", "inactive")
        ]
        assert eng.alerts() == []

    def test_fires_once_the_condition_has_held_for_for(self) -> None:
        """Sustained load fires exactly when `for` has passed, stamped with that sample's time."""
        eng = engine(CPU)
        for step in range(6):
            assert eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0 + 10 * step)[1:] == []
        fired = eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0 + 60)
        assert moves(fired) == [("cpu_high", "", "pending", "firing")]
        assert fired[0].notifies
        assert (fired[0].at, fired[0].active_since) == (T0 + 60, T0)
        assert eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0 + 70) == []

    def test_a_rule_without_for_fires_on_the_first_sample(self) -> None:
        """`for = "0s"` goes straight from inactive to firing."""
        eng = engine({**CPU, "for": "0s"})
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0)) == [("cpu_high", "", "inactive", "firing")]

    def test_selectors_pick_the_nodes(self) -> None:
        """A rule for web nodes ignores a db node, and covers it once its labels say it is a web node."""
        eng = engine({**CPU, "for": "0s", "labels": {"role": "web"}})
        assert eng.observe("db-1", {"role": "db"}, {"cpu_percent": 95.0}, T0) == []
        assert moves(eng.observe("db-1", {"role": "web"}, {"cpu_percent": 95.0}, T0 + 1)) == [
            ("cpu_high", "", "inactive", "firing")
        ]


class TestHysteresis:
    def test_a_value_hovering_at_the_threshold_does_not_flap(self) -> None:
        """Once firing, values around 90 keep it firing; only a drop below the clear threshold resolves it."""
        eng = engine({**CPU, "for": "0s"})
        eng.observe("web-1", WEB, {"cpu_percent": 91.0}, T0)
        for step, value in enumerate([89.0, 90.5, 88.0, 91.0, 85.0, 90.0, 81.0]):
            assert eng.observe("web-1", WEB, {"cpu_percent": value}, T0 + 1 + step) == []
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 79.0}, T0 + 20)) == [
            ("cpu_high", "", "firing", "resolved")
        ]

    def test_without_a_clear_band_hovering_would_flap(self) -> None:
        """The same hovering values without clear_threshold resolve and fire again: the band is what helps."""
        eng = engine({"name": "cpu_high", "condition": "cpu_percent > 90"})
        news = [
            t.new
            for step, v in enumerate([91.0, 89.0, 91.0, 89.0])
            for t in eng.observe("n", WEB, {"cpu_percent": v}, T0 + step)
        ]
        assert news == ["firing", "resolved", "firing", "resolved"]

    def test_clear_for_ignores_short_dips_while_pending(self) -> None:
        """With clear_for, a brief dip does not restart the `for` wait: load with short lulls still fires."""
        eng = engine({**CPU, "clear_for": "30s"})
        eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0)
        assert eng.observe("web-1", WEB, {"cpu_percent": 50.0}, T0 + 20) == []
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0 + 60)) == [
            ("cpu_high", "", "pending", "firing")
        ]

    def test_clear_for_and_keep_firing_for_delay_the_resolve(self) -> None:
        """A firing alert resolves only after the value stayed clear for clear_for and keep_firing_for."""
        eng = engine({**CPU, "for": "0s", "clear_for": "30s", "keep_firing_for": "2m"})
        eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0)
        assert eng.observe("web-1", WEB, {"cpu_percent": 10.0}, T0 + 10) == []
        assert eng.observe("web-1", WEB, {"cpu_percent": 10.0}, T0 + 100) == []
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 10.0}, T0 + 120)) == [
            ("cpu_high", "", "firing", "resolved")
        ]


class TestLiveness:
    def test_metric_alerts_are_unknown_while_the_node_is_quiet(self) -> None:
        """Stale and offline put a firing CPU alert in unknown; time passing neither resolves nor re-fires it."""
        eng = engine({**CPU, "for": "0s"})
        eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0)
        stale = eng.liveness("web-1", "stale", T0 + 3)
        assert moves(stale) == [("cpu_high", "", "firing", "unknown"), ("node_offline", "", "inactive", "pending")]
        assert not any(t.notifies for t in stale)
        offline = eng.liveness("web-1", "offline", T0 + 10)
        assert moves(offline) == [("node_offline", "", "pending", "firing")]
        assert offline[0].notifies
        assert eng.tick(T0 + 3600) == []
        assert {(a.rule.name, a.state) for a in eng.alerts()} == {("cpu_high", "unknown"), ("node_offline", "firing")}

    def test_fresh_samples_judge_unknown_alerts_again(self) -> None:
        """Back online, a CPU still high is firing again without a second page; the offline alert resolves."""
        eng = engine({**CPU, "for": "0s"})
        eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0)
        eng.liveness("web-1", "offline", T0 + 10)
        back = eng.observe("web-1", WEB, {"cpu_percent": 96.0}, T0 + 60)
        assert moves(back) == [("node_offline", "", "firing", "resolved"), ("cpu_high", "", "unknown", "firing")]
        assert [t.notifies for t in back] == [True, False]
        low = eng.observe("web-1", WEB, {"cpu_percent": 5.0}, T0 + 61)
        assert moves(low) == [("cpu_high", "", "firing", "resolved")]

    def test_a_pending_alert_restarts_its_wait_after_a_quiet_spell(self) -> None:
        """Nothing fires on data it never saw: `for` counts again from the first fresh sample."""
        eng = engine(CPU)
        eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0)
        eng.liveness("web-1", "stale", T0 + 30)
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0 + 70)) == [
            ("node_offline", "", "pending", "inactive"),
            ("cpu_high", "", "unknown", "pending"),
        ]
        assert eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0 + 120) == []
        assert moves(eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0 + 130))[-1][3] == "firing"

    def test_offline_for_and_stale_for_are_timers(self) -> None:
        """The offline alert waits `for` after offline, or `stale_for` after stale, whichever comes first."""
        eng = engine(builtin={"node_offline": {"for": "2m", "stale_for": "5m"}})
        assert moves(eng.liveness("n", "stale", T0)) == [("node_offline", "", "inactive", "pending")]
        assert eng.next_due() == T0 + 300
        eng.liveness("n", "offline", T0 + 60)
        assert eng.next_due() == T0 + 180
        assert eng.tick(T0 + 179) == []
        fired = eng.tick(T0 + 200)
        assert moves(fired) == [("node_offline", "", "pending", "firing")]
        assert fired[0].at == T0 + 180
        assert eng.next_due() is None

    def test_a_node_back_before_for_never_fires(self) -> None:
        """A node offline for less than `for` is never announced."""
        eng = engine(builtin={"node_offline": {"for": "2m"}})
        eng.liveness("n", "offline", T0)
        assert moves(eng.liveness("n", "online", T0 + 30)) == [("node_offline", "", "pending", "inactive")]
        assert eng.tick(T0 + 600) == []

    def test_a_forgotten_node_leaves_no_alert_behind(self) -> None:
        """When the cache forgets a node, its firing alerts resolve instead of staying stuck."""
        eng = engine()
        eng.liveness("n", "offline", T0)
        assert moves(eng.forget("n", T0 + 86400)) == [("node_offline", "", "firing", "resolved")]
        assert eng.alerts() == []


class TestReboot:
    def test_a_reboot_fires_and_resolves_by_itself(self) -> None:
        """A changed boot time pages once, then resolves after keep_firing_for."""
        eng = engine(builtin={"node_rebooted": {"keep_firing_for": "10m"}})
        fired = eng.reboot("n", T0, WEB)
        assert moves(fired) == [("node_rebooted", "", "inactive", "firing")]
        assert fired[0].notifies
        assert fired[0].labels == WEB
        assert eng.reboot("n", T0 + 60) == []  # a second reboot extends it
        assert eng.tick(T0 + 600) == []
        assert moves(eng.tick(T0 + 660)) == [("node_rebooted", "", "firing", "resolved")]


class TestLabelsChange:
    """A node whose labels change (a hello with new --label values) is alerted on and routed by the new ones."""

    def test_the_offline_alert_carries_the_labels_of_the_last_hello(self) -> None:
        """A web node relabelled db at its hello, then lost before any sample: its offline page says db.

        Regression: only ``observe`` re-labelled a node, so liveness alerts kept the old labels.
        """
        eng = engine(builtin={"node_offline": {"for": "0s"}})
        eng.observe("n", WEB, {"cpu_percent": 5.0}, T0)
        eng.liveness("n", "offline", T0 + 10, WEB)
        eng.liveness("n", "online", T0 + 20, {"role": "db"})
        fired = eng.liveness("n", "offline", T0 + 30, {"role": "db"})
        assert moves(fired) == [("node_offline", "", "inactive", "firing")]
        assert fired[0].labels == {"role": "db"}

    def test_a_rule_for_the_new_labels_covers_the_node_at_once(self) -> None:
        """A reboot rule selecting role=db fires for a node that came back from its reboot labelled db."""
        eng = engine(builtin={"node_rebooted": {"labels": {"role": "db"}}})
        eng.observe("n", WEB, {"cpu_percent": 5.0}, T0)
        fired = eng.reboot("n", T0 + 60, {"role": "db"})
        assert moves(fired) == [("node_rebooted", "", "inactive", "firing")]
        assert fired[0].labels == {"role": "db"}

    def test_no_labels_given_keeps_the_ones_it_has(self) -> None:
        """A liveness change passed without labels keeps the node's labels rather than clearing them."""
        eng = engine(builtin={"node_offline": {"for": "0s"}})
        eng.observe("n", WEB, {"cpu_percent": 5.0}, T0)
        fired = eng.liveness("n", "offline", T0 + 10)
        assert fired[0].labels == WEB


class TestInstances:
    def test_one_alert_per_mount(self) -> None:
        """Only the full mount alerts, and it is named in the alert."""
        eng = engine(builtin={"disk_full": {"for": "0s"}})
        values = Flattener(eng.watched_metrics)(heartbeat(disks={"/": [100, 50, 50], "/var": [100, 95, 3]}))
        assert moves(eng.observe("n", WEB, values, T0)) == [("disk_full", "/var", "inactive", "firing")]

    def test_fullness_counts_like_df(self) -> None:
        """used / (used + available), so root's reserved blocks count as full: 90 of 100 bytes with 5 free is 94.7 %."""
        values = Flattener(["disk_fullness_percent"])(heartbeat(disks={"/": [100, 90, 5], "/old": [100, 25]}))
        assert values == {"disk_fullness_percent:/": 100 * 90 / 95, "disk_fullness_percent:/old": 25.0}

    def test_derived_metrics(self) -> None:
        """Load per core, the busiest core, skew magnitude and the loss counters are there to write rules on."""
        flatten = Flattener(["load1_per_core", "cpu_max_core_percent", "clock_skew_abs_s", "dropped_samples"])
        sample = heartbeat(load_avg=[6.0, 1.0, 1.0], cpu_per_core_percent=[5.0, 99.0])
        values = flatten(sample, cpu_count=4, clock_skew_s=-3.0, dropped_samples=7, missing_samples=2)
        assert values == {
            "load1_per_core": 1.5,
            "cpu_max_core_percent": 99.0,
            "clock_skew_s": -3.0,
            "clock_skew_abs_s": 3.0,
            "dropped_samples": 7,
            "missing_samples": 2,
        }

    def test_a_mount_that_disappears_clears_its_alert(self) -> None:
        """An alert on an unmounted disk resolves after a few samples without it, instead of staying stuck."""
        eng = engine(builtin={"disk_full": {"for": "0s"}})
        eng.observe("n", WEB, {"disk_fullness_percent:/mnt": 99.0}, T0)
        for step in range(1, ABSENT_SAMPLES_TO_CLEAR):
            assert eng.observe("n", WEB, {"cpu_percent": 1.0}, T0 + step) == []
        assert moves(eng.observe("n", WEB, {}, T0 + 10)) == [("disk_full", "/mnt", "firing", "resolved")]

    def test_increase_fires_on_a_rise_and_resolves_after_keep_firing_for(self) -> None:
        """Dropped samples alert when the count grows, not while it merely stays above zero."""
        eng = engine()
        assert eng.observe("n", WEB, {"dropped_samples": 40.0}, T0) == []  # a baseline
        assert eng.observe("n", WEB, {"dropped_samples": 40.0}, T0 + 1) == []
        rose = eng.observe("n", WEB, {"dropped_samples": 45.0}, T0 + 2)
        assert moves(rose) == [("agent_dropped_samples", "", "inactive", "firing")]
        assert rose[0].value == 5.0
        assert eng.observe("n", WEB, {"dropped_samples": 45.0}, T0 + 60) == []
        assert moves(eng.observe("n", WEB, {"dropped_samples": 45.0}, T0 + 2 + 1800)) == [
            ("agent_dropped_samples", "", "firing", "resolved")
        ]

    def test_increase_is_seen_beside_other_alerts_and_across_agent_restarts(self) -> None:
        """A counter's rise fires while another alert is live, and a counter reset to a new count is a rise too."""
        eng = engine({**CPU, "for": "0s"})
        eng.observe("n", WEB, {"cpu_percent": 99.0, "dropped_samples": 40.0}, T0)
        rose = eng.observe("n", WEB, {"cpu_percent": 99.0, "dropped_samples": 41.0}, T0 + 1)
        assert moves(rose) == [("agent_dropped_samples", "", "inactive", "firing")]
        other = engine()
        other.observe("m", WEB, {"dropped_samples": 40.0}, T0)
        reset = other.observe("m", WEB, {"dropped_samples": 3.0}, T0 + 1)  # a new agent instance counts from 0
        assert [(t.new, t.value) for t in reset] == [("firing", 3.0)]


class TestRestart:
    def test_a_restart_keeps_firing_alerts_without_notifying_again(self) -> None:
        """Saved and loaded state keeps every alert as it was; the next samples cause no transition at all."""
        eng = engine({**CPU, "for": "0s"}, {"name": "mem_high", "condition": "mem_percent > 90", "for": "5m"})
        eng.observe("web-1", WEB, {"cpu_percent": 95.0, "mem_percent": 99.0, "dropped_samples": 3.0}, T0)
        eng.liveness("web-2", "offline", T0)
        saved = json.loads(json.dumps(eng.to_state()))  # the store keeps JSON

        again = engine({**CPU, "for": "0s"}, {"name": "mem_high", "condition": "mem_percent > 90", "for": "5m"})
        assert again.restore(saved) == []
        assert [a.view() for a in again.alerts()] == [a.view() for a in eng.alerts()]
        assert (
            again.observe("web-1", WEB, {"cpu_percent": 95.0, "mem_percent": 99.0, "dropped_samples": 3.0}, T0 + 5)
            == []
        )
        assert again.liveness("web-2", "offline", T0 + 5) == []
        fired = again.observe(
            "web-1", WEB, {"cpu_percent": 95.0, "mem_percent": 99.0, "dropped_samples": 9.0}, T0 + 300
        )
        assert sorted(moves(fired)) == [
            ("agent_dropped_samples", "", "inactive", "firing"),
            ("mem_high", "", "pending", "firing"),
        ]

    def test_a_restart_keeps_timers(self) -> None:
        """A reboot alert saved while firing still resolves on time after the restart."""
        eng = engine()
        eng.reboot("n", T0)
        again = engine()
        again.restore(eng.to_state())
        assert again.next_due() == T0 + 900
        assert moves(again.tick(T0 + 900)) == [("node_rebooted", "", "firing", "resolved")]

    def test_alerts_of_a_removed_rule_are_dropped_and_named(self) -> None:
        """A rule deleted from the config between runs does not haunt the restarted collector."""
        eng = engine({**CPU, "for": "0s"})
        eng.observe("web-1", WEB, {"cpu_percent": 95.0}, T0)
        again = engine()
        assert again.restore(eng.to_state()) == ["cpu_high/web-1/"]
        assert again.alerts() == []
