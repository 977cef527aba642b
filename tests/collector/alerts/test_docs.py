"""docs/alerts.md and the README stay true: their example configs parse, and the tables name every built-in rule."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from collector.alerts.routes import parse_alerts_config
from collector.alerts.rules import BUILTIN_RULES
from collector.alerts.samples import DERIVED_METRICS, FAMILY_METRICS

DOC = (Path(__file__).resolve().parents[3] / "docs" / "alerts.md").read_text(encoding="utf-8")


def toml_blocks() -> list[str]:
    """Every ```toml block of the doc."""
    return re.findall(r"```toml\n(.*?)```", DOC, flags=re.DOTALL)


def test_the_complete_example_is_a_valid_config() -> None:
    """A user who copies the example gets a collector that starts, with the rules and routes it shows."""
    example = next(block for block in toml_blocks() if "# collector.toml" in block)
    config = parse_alerts_config(tomllib.loads(example)["alerts"])
    names = {rule.name for rule in config.rules}
    assert {"cpu_high", "load_high", "memory_low", "losing_samples", "node_offline"} <= names
    assert "clock_skew" not in names
    assert [route.name for route in config.routes] == ["oncall", "chat"]


def test_the_section_snippets_are_valid_too() -> None:
    """The rule and route snippets of sections 2 and 5 parse as they are."""
    for block in toml_blocks():
        parse_alerts_config(tomllib.loads(block).get("alerts", {}))


def test_every_built_in_rule_and_metric_is_documented() -> None:
    """The built-in table and the metric list name every built-in, derived and per-instance metric."""
    for name in BUILTIN_RULES:
        assert f"| `{name}` |" in DOC
    for metric in DERIVED_METRICS + FAMILY_METRICS:
        assert f"`{metric}`" in DOC


def test_the_readme_example_is_a_valid_config() -> None:
    """The README's Alerts section shows a config the collector accepts as it is."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)
    config = parse_alerts_config(tomllib.loads(example)["alerts"])
    assert {"cpu_high", "memory_low", "load_high", "node_offline", "disk_full"} <= {r.name for r in config.rules}
    assert "clock_skew" not in {r.name for r in config.rules}
    assert [route.name for route in config.routes] == ["oncall", "chat"]
