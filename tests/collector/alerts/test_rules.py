"""Alert rules from TOML: the built-ins, overrides, and a table of refused rules with the message a user sees."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from collector.alerts.rules import BUILTIN_RULES, parse_rules
from collector.alerts.samples import HEARTBEAT_METRICS
from collector.alerts.settings import AlertConfigError, parse_duration

EXAMPLE = """
[alerts.builtin.disk_full]
condition = "disk_fullness_percent >= 95"
for = "10m"

[alerts.builtin.clock_skew]
enabled = false

[[alerts.rule]]
name = "cpu_high"
severity = "critical"
condition = "cpu_percent > 90"
for = "5m"
clear_threshold = 80
clear_for = "1m"
keep_firing_for = "2m"
nodes = ["web-*"]
exclude_nodes = ["web-canary"]
labels = { role = "web", zone = "eu-*" }
summary = "CPU above 90 %"
"""


def _rule(**table: Any) -> dict[str, Any]:
    return {"rule": [{"name": "x", "condition": "cpu_percent > 90", **table}]}


class TestParseRules:
    def test_builtins_are_on_by_default(self) -> None:
        """An empty [alerts] table still alerts on offline, reboot, dropped samples, full disks and clock skew."""
        rules = parse_rules({})
        assert [r.name for r in rules] == list(BUILTIN_RULES)
        offline = rules[0]
        assert (offline.kind, offline.severity, offline.for_s, offline.stale_for_s) == ("offline", "critical", 0, 300)
        disk = next(r for r in rules if r.name == "disk_full")
        assert (disk.metric, disk.op, disk.threshold, disk.clear_threshold) == ("disk_fullness_percent", ">=", 90, 85)

    def test_example_config(self) -> None:
        """The documented example parses: an adjusted built-in, a disabled one, and a rule with every key."""
        rules = {r.name: r for r in parse_rules(tomllib.loads(EXAMPLE)["alerts"])}
        assert "clock_skew" not in rules
        assert (rules["disk_full"].threshold, rules["disk_full"].for_s) == (95, 600)
        cpu = rules["cpu_high"]
        assert (cpu.for_s, cpu.clear_threshold, cpu.clear_for_s, cpu.keep_firing_for_s) == (300, 80, 60, 120)
        assert cpu.applies_to("web-1", {"role": "web", "zone": "eu-west"})
        assert not cpu.applies_to("web-canary", {"role": "web", "zone": "eu-west"})
        assert not cpu.applies_to("web-1", {"role": "web", "zone": "us-east"})
        assert not cpu.applies_to("db-1", {"role": "web", "zone": "eu-west"})

    def test_every_numeric_heartbeat_field_is_a_metric(self) -> None:
        """A rule may test any numeric wire field, such as process_count or swap_percent."""
        assert {"cpu_percent", "mem_percent", "swap_percent", "process_count", "uptime_s"} <= set(HEARTBEAT_METRICS)
        assert "seq" not in HEARTBEAT_METRICS
        for name in HEARTBEAT_METRICS:
            assert parse_rules({"rule": [{"name": "r", "condition": f"{name} > 1"}]})[-1].metric == name

    def test_increase_of_a_counter(self) -> None:
        """increase(dropped_samples) > 0 tests the rise between samples, not the running total."""
        rule = parse_rules(_rule(condition="increase(missing_samples) > 10"))[-1]
        assert (rule.metric, rule.increase, rule.threshold) == ("missing_samples", True, 10)

    @pytest.mark.parametrize(
        ("text", "seconds"), [("250ms", 0.25), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800)]
    )
    def test_durations(self, text: str, seconds: float) -> None:
        """Durations are written as Prometheus writes them."""
        assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        (_rule(**{"for": 5}), "alert rule 'x': key 'for': expected a duration like '5m', '30s' or '1h30m'"),
        (_rule(**{"for": "5 minutes"}), "alert rule 'x': key 'for': expected a duration like '5m'"),
        (_rule(**{"for": "400d"}), "key 'for': expected a duration like '5m', '30s' or '1h30m' (at most a year)"),
        (_rule(clear_for="-1m"), "alert rule 'x': key 'clear_for': expected a duration"),
        (_rule(condition="cpu > 90"), "alert rule 'x': key 'condition': expected a metric, one of "),
        (_rule(condition="cpu_percent >> 90"), "key 'condition': expected '<metric> <op> <number>'"),
        (_rule(condition="cpu_percent > high"), "key 'condition': expected '<metric> <op> <number>'"),
        (_rule(condition="increase(disk_fullness_percent) > 1"), "expected increase() of a scalar counter"),
        (_rule(condition=90), "alert rule 'x': key 'condition': expected a string, got 90"),
        (_rule(severity="page"), "key 'severity': expected one of 'info', 'warning', 'critical', got 'page'"),
        (_rule(clear_threshold=95), "key 'clear_threshold': expected a number at most the threshold 90, got 95"),
        (_rule(condition="mem_available_bytes < 100", clear_threshold=50), "expected a number at least the threshold"),
        (_rule(condition="process_count == 1", clear_threshold=2), "expected no clear_threshold with == or !="),
        (_rule(clear_threshold="80"), "key 'clear_threshold': expected a number like 80 or 0.5, got '80'"),
        (_rule(nodes="web-*"), "alert rule 'x': key 'nodes': expected a list of strings like [\"web-*\"]"),
        (_rule(nodes=[""]), "key 'nodes': expected non-empty patterns"),
        (_rule(labels={"role": 1}), "key 'labels': expected a table of label = \"value glob\""),
        (_rule(fro="5m"), "alert rule 'x': key 'fro': expected one of name, severity, summary, nodes"),
        (_rule(stale_for="5m"), "alert rule 'x': key 'stale_for': expected one of"),
        (_rule(name="cpu high"), "alert rule 'cpu high': key 'name': expected a name of letters, digits and '_'"),
        ({"rule": [{"condition": "cpu_percent > 1"}]}, "alert rule '?': key 'name': expected a name"),
        ({"rule": [{"name": "a", "condition": "cpu_percent > 1"}] * 2}, "key 'name': expected a unique"),
        (_rule(name="disk_full"), "got the name of a built-in rule (override it under [alerts.builtin])"),
        ({"rule": {"name": "x"}}, "alerts: key 'rule': expected [[alerts.rule]] tables"),
        ({"builtin": {"disk_ful": {}}}, "alerts.builtin: key 'disk_ful': expected one of node_offline, node_rebooted"),
        ({"builtin": {"disk_full": {"enabled": "no"}}}, "'disk_full': key 'enabled': expected true or false"),
        ({"builtin": {"node_offline": {"condition": "x"}}}, "alert rule 'node_offline': key 'condition': expected one"),
        ({"builtin": {"node_rebooted": {"keep_firing_for": "soon"}}}, "'node_rebooted': key 'keep_firing_for'"),
        ({"builtin": {"disk_full": {"name": "y"}}}, "alert rule 'disk_full': key 'name': expected one of"),
    ],
)
def test_bad_rules_are_refused_with_the_rule_the_key_and_what_it_accepts(alerts: dict[str, Any], message: str) -> None:
    """A bad rule stops the collector at start with one line naming the rule, the key and what it accepts."""
    with pytest.raises(AlertConfigError) as caught:
        parse_rules(alerts)
    assert message in str(caught.value)
