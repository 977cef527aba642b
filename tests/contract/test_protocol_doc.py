"""Contract points 6, 11 and 14 of issue 11: docs/protocol.md names what the collector really sends."""

from __future__ import annotations

import re
from pathlib import Path

from annotated_types import MaxLen
from pydantic.fields import FieldInfo

from collector.cache import NodeCache
from collector.metrics import CollectorStats, render_metrics, take_snapshot
from shared.limits import MAX_SHORT_TEXT
from shared.messages import NodeFacts, NodeStatus, ProcessUsage, WireModel
from tests.support.messages import WALL_T0, heartbeat, hello

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
STATUS_REASONS = {"hello", "heartbeat_resumed", "no_heartbeat", "agent_closed"}


def protocol_md() -> str:
    """The contract's text."""
    return PROTOCOL_MD.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text from the heading ``title`` to the next heading of any level."""
    text = protocol_md()
    start = text.index(title)
    end = re.search(r"^#+ ", text[start + len(title) :], re.MULTILINE)
    return text[start : start + len(title) + (end.start() if end else len(text))]


def test_point_6_example_reasons_are_reasons_the_collector_sends() -> None:
    """Point 6: every status reason in the doc's examples is one the collector sends (no missed_heartbeats)."""
    from collector import cache

    sent = {value for name, value in vars(cache).items() if name.startswith("REASON_")}
    assert sent == STATUS_REASONS
    shown = set(
        re.findall(r'"reason": "([a-z_]+)"', section("### Snapshot"))
        + re.findall(r'"reason": "([a-z_]+)"', section("### Update"))
    )
    assert shown <= sent, f"examples show reasons the collector never sends: {shown - sent}"


def test_point_11_short_strings_are_named() -> None:
    """Point 11: every field bounded at 256 characters is named in section 5's list of short strings."""
    sentence = section("## 5. Messages").split("Short strings are", 1)[1].split("| `type`", 1)[0]
    models: tuple[type[WireModel], ...] = (NodeFacts, NodeStatus, ProcessUsage)
    short = {
        name
        for model in models
        for name, info in model.model_fields.items()
        if any(isinstance(m, MaxLen) and m.max_length == MAX_SHORT_TEXT for m in info.metadata)
        or any(isinstance(m, MaxLen) and m.max_length == MAX_SHORT_TEXT for m in _metadata_of(info.annotation))
    }
    assert {"hostname", "name", "reason"} <= short, f"expected the known short strings, found {short}"
    missing = {name for name in short if f"`{name}`" not in sentence}
    assert not missing, f"section 5 does not name the short strings {missing}"


def _metadata_of(annotation: object) -> list[object]:
    """Constraint metadata inside an ``Annotated[...] | None`` annotation."""
    found: list[object] = []
    for part in (*getattr(annotation, "__args__", ()), annotation):
        for item in getattr(part, "__metadata__", ()):
            found.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return found


def test_point_14_every_metric_is_in_the_spec() -> None:
    """Point 14: every metric /metrics exposes is listed, with its type, in section 8.3."""
    cache = NodeCache()
    cache.hello(hello(), 1, 0.0, WALL_T0)
    cache.heartbeat("node-a", 1, heartbeat(1, mem_used_bytes=1, mem_available_bytes=1, swap_used_bytes=0), 1.0, WALL_T0)
    stats = CollectorStats()
    stats.protocol_errors[("ingest", "schema")] += 1
    text = render_metrics(take_snapshot(cache, stats)).decode()
    exposed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    table = section("### 8.3")
    for name, kind in exposed.items():
        shown = name + "_total" if kind == "counter" and not name.endswith("_total") else name
        assert re.search(rf"^\| `{shown}` \| {kind} \|", table, re.MULTILINE), f"section 8.3 lacks {shown} ({kind})"
    assert len(exposed) > 20  # the scrape rendered node and collector metrics
