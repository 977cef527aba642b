"""Every node's metric families for /metrics, as rich as the heartbeat, named after node_exporter's.

Where a value means what a node_exporter metric means, its name is that metric's with
``nodewatch_`` in front (``nodewatch_node_filesystem_avail_bytes{node, mountpoint}``), in
snake_case (promtool refuses camelCase: ``node_memory_MemTotal_bytes`` becomes
``nodewatch_node_memory_total_bytes``). Rates and shares the agent computes (node_exporter
exports raw counters instead) get names of their own with their unit, ``_per_second`` or
``_ratio`` (0-1, not percent). One ``nodewatch_node_info`` series carries the node's facts
as labels, so no other series repeats them.

Slow-tier fields (docs/protocol.md 5.2, marked ‡) come in about one heartbeat in five:
``SlowDetails`` keeps each node's last heartbeat that carried them, and a scrape uses it
until it is three slow periods old, as the protocol says a consumer should.

Families are written as text directly (``Family``), not through prometheus_client's
registry: see ``Family`` for why. Pure: views in, text out; safe in a thread.
Not here: the snapshot and the collector's own counters (``collector.metrics``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from collector.cache import STATES, NodeRecord
from collector.metric_table import DETAIL_GAUGES, GPU_GAUGES, PAIR_FAMILIES, SAMPLE_GAUGES, Reader
from shared.messages import Heartbeat, NodeFacts

# The agent reads the slow tier every 5 s, or every interval if longer (docs/protocol.md 5.2).
SLOW_PERIOD_S = 5.0
# A slow-tier value not renewed for this many periods is gone (docs/protocol.md 5.2).
SLOW_GONE_PERIODS = 3


# The slow-tier fields has_details looks at; every one defaults to None.
_DETAIL_FIELDS = frozenset(
    (
        "cpu_mode_percent",
        "tcp_established",
        "fd_allocated",
        "disk_inodes",
        "pressure_avg10_percent",
        "net_interface_errors",
        "disks_read_only",
        "gpus",
    )
)


def has_details(hb: Heartbeat) -> bool:
    """Whether a heartbeat carries a fresh slow-tier reading (the agent sends all of these together).

    Four heartbeats in five carry none: a field the message was not given is its default, None,
    so one set test over pydantic's ``model_fields_set`` answers those (it runs per heartbeat).
    """
    if _DETAIL_FIELDS.isdisjoint(hb.model_fields_set):
        return False
    return (
        hb.cpu_mode_percent is not None
        or hb.tcp_established is not None
        or hb.fd_allocated is not None
        or hb.disk_inodes is not None
        or hb.pressure_avg10_percent is not None
        or hb.net_interface_errors is not None
        or hb.disks_read_only is not None
        or hb.gpus is not None
    )


class SlowDetails:
    """Each node's last heartbeat frame with slow-tier details, and its ``sampled_at``."""

    def __init__(self) -> None:
        self.frames: dict[str, tuple[bytes, float]] = {}

    def note(self, record: NodeRecord | None, heartbeat: Heartbeat) -> None:
        """Keep the node's newest sample if it carries details (call after the cache applied it)."""
        if record is not None and record.last_sample_frame is not None and has_details(heartbeat):
            self.frames[record.node_id] = (record.last_sample_frame, heartbeat.sampled_at)

    def get(self, node_id: str) -> tuple[bytes, float] | None:
        """The node's details frame and when it was sampled, if any."""
        return self.frames.get(node_id)

    def prune(self, keep: Iterable[str]) -> None:
        """Drop nodes the cache forgot (called at scrape time, not per heartbeat)."""
        alive = set(keep)
        for node_id in [n for n in self.frames if n not in alive]:
            del self.frames[node_id]


def details_fresh(details_at: float, sample_at: float, interval_s: float) -> bool:
    """Whether a slow-tier reading from ``details_at`` still stands next to a sample at ``sample_at``."""
    return sample_at - details_at <= SLOW_GONE_PERIODS * max(SLOW_PERIOD_S, interval_s)


@dataclass(frozen=True, slots=True)
class NodeLiveness:
    """A node's liveness and facts as the families show them, copied from its record at scrape time."""

    node_id: str
    state: str
    connected: bool
    last_seen_at: float | None
    clock_skew_s: float | None
    missing_samples: int
    dropped_samples: int
    facts: NodeFacts  # frozen: shared with the render thread as is

    @classmethod
    def of(cls, record: NodeRecord) -> NodeLiveness:
        """Copy the record's fields (on the event loop, where the record changes), in field order."""
        return cls(
            record.node_id,
            record.state,
            record.conn is not None,
            record.last_seen_at,
            record.clock_skew_s,
            record.missing_samples,
            record.dropped_samples,
            record.facts,
        )


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the per-node families read: liveness and facts, the last sample and the last slow-tier details."""

    liveness: NodeLiveness
    sample: Heartbeat | None
    details: Heartbeat | None


INFO_LABELS = ("hostname", "os", "os_release", "platform", "arch", "agent_version", "python_version", "in_container")


def escape_label(value: str) -> str:
    """A label value as the text format writes it (backslash, double quote and newline escaped)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


class Family:
    """One metric family's HELP/TYPE head and sample lines, written as text straight away.

    prometheus_client's ``generate_latest`` spends ~5 us per sample on validation and escaping
    of names we already know are valid; at 2,000 full-breadth nodes (180,000 series) that was a
    second of the scrape. Label names are written sorted, as prometheus_client writes them.
    """

    __slots__ = ("head", "key", "key_first", "lines", "prefix")

    def __init__(self, name: str, help_text: str, *, counter: bool = False, key: str = "") -> None:
        sample_name = name + "_total" if counter else name
        kind = "counter" if counter else "gauge"
        self.head = f"# HELP {sample_name} {help_text}\n# TYPE {sample_name} {kind}\n"
        self.prefix = sample_name + "{"
        self.key = key
        self.key_first = key < "node"
        self.lines: list[str] = []

    def add(self, node: str, value: float) -> None:
        """One series labelled by the node only (``node`` already escaped and quoted: ``node="x"``)."""
        self.lines.append(f"{self.prefix}{node}}} {float_text(value)}\n")

    def add_keyed(self, node: str, key_value: str, value: float) -> None:
        """One series labelled by the node and this family's key (mount, device, core, ...)."""
        other = f'{self.key}="{escape_label(key_value)}"'
        labels = f"{other},{node}" if self.key_first else f"{node},{other}"
        self.lines.append(f"{self.prefix}{labels}}} {float_text(value)}\n")

    def add_labelled(self, labels: str, value: float) -> None:
        """One series with these labels (already escaped, quoted and sorted, the node's among them)."""
        self.lines.append(f"{self.prefix}{labels}}} {float_text(value)}\n")

    def text(self) -> str:
        """The family as exposition text: head, then its samples."""
        return self.head + "".join(self.lines)


def float_text(value: float) -> str:
    """A value as prometheus_client writes it: Go's float formatting (``prometheus_client.utils.floatToGoString``)."""
    number = float(value)
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if math.isnan(number):
        return "NaN"
    text = repr(number)
    dot = text.find(".")
    if number > 0 and dot > 6:  # Go switches to an exponent sooner than Python: 8589934592.0 -> 8.589934592e+09
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def node_exposition(views: Iterable[NodeView]) -> str:
    """Every per-node family as exposition text, one pass over the nodes."""
    state = Family("nodewatch_node_state", "1 for the node's current state")
    info = Family("nodewatch_node_info", "1, with the node's facts as labels")
    connected = Family("nodewatch_node_connected", "1 while the agent's websocket is open")
    last_seen = Family("nodewatch_node_last_seen_timestamp_seconds", "When the collector last heard the node")
    skew = Family("nodewatch_node_clock_skew_seconds", "Agent clock minus collector clock")
    missing = Family("nodewatch_node_missing_samples", "Samples never received (seq gaps)", counter=True)
    dropped = Family("nodewatch_node_dropped_samples", "Samples the agent dropped from its backlog", counter=True)
    memory_total = Family("nodewatch_node_memory_total_bytes", "Memory size")
    cpus = Family("nodewatch_node_cpus", "Logical CPUs")
    boot = Family("nodewatch_node_boot_time_seconds", "When the node booted, epoch s")
    gauges = [Family(name, text) for name, text, _ in SAMPLE_GAUGES]
    detail_gauges = [Family(name, text) for name, text, _ in DETAIL_GAUGES]
    pairs = [Family(f.name, f.help, counter=f.counter, key=f.label) for f in PAIR_FAMILIES]
    gpus = [Family(name, text) for name, text, _ in GPU_GAUGES]
    truncated = Family(
        "nodewatch_node_series_truncated",
        "Keyed series (cores, mounts, interfaces, sensors) of the node left out of this scrape, past the per-node cap",
    )
    info_order = sorted((*INFO_LABELS, "node"))
    for view in views:
        live = view.liveness
        node = f'node="{escape_label(live.node_id)}"'
        facts = live.facts
        for name in STATES:
            state.lines.append(f'nodewatch_node_state{{{node},state="{name}"}} {1.0 if live.state == name else 0.0}\n')
        fact_values = {key: str(getattr(facts, key)) for key in INFO_LABELS}
        fact_values["in_container"] = fact_values["in_container"].lower()
        info_labels = ",".join(
            node if key == "node" else f'{key}="{escape_label(fact_values[key])}"' for key in info_order
        )
        info.lines.append(f"nodewatch_node_info{{{info_labels}}} 1.0\n")
        connected.add(node, 1.0 if live.connected else 0.0)
        if live.last_seen_at is not None:
            last_seen.add(node, live.last_seen_at)
        if live.clock_skew_s is not None:
            skew.add(node, live.clock_skew_s)
        missing.add(node, live.missing_samples)
        dropped.add(node, live.dropped_samples)
        memory_total.add(node, facts.memory_total_bytes)
        if facts.cpu_count_logical is not None:
            cpus.add(node, facts.cpu_count_logical)
        if facts.boot_time_at is not None:
            boot.add(node, facts.boot_time_at)
        sample, details = view.sample, view.details
        if sample is not None:
            _add(gauges, SAMPLE_GAUGES, sample, node)
        if details is not None:
            _add(detail_gauges, DETAIL_GAUGES, details, node)
            _add_gpus(gpus, details, node)
        left_out = _add_pairs(pairs, sample, details, node)
        if left_out:
            truncated.add(node, left_out)
    families = (state, info, connected, last_seen, skew, missing, dropped, memory_total, cpus, boot)
    return "".join(family.text() for family in (*families, *gauges, *detail_gauges, *pairs, *gpus, truncated))


def _add_pairs(families: list[Family], sample: Heartbeat | None, details: Heartbeat | None, node: str) -> int:
    """The keyed series of one node, at most each family's ``max_keys``; returns how many were left out."""
    left_out = 0
    for family, spec in zip(families, PAIR_FAMILIES, strict=True):
        source = details if spec.from_details else sample
        values = None if source is None else spec.read(source)
        if values is None:
            continue
        rest = iter(values)
        kept = list(itertools.islice(rest, spec.max_keys + 1))
        if len(kept) > spec.max_keys:
            left_out += 1 + sum(1 for _ in rest)
            kept.pop()
        for key, value in kept:
            family.add_keyed(node, key, value)
    return left_out


def _add(families: list[Family], table: tuple[tuple[str, str, Reader], ...], hb: Heartbeat, node: str) -> None:
    for family, (_, _, read) in zip(families, table, strict=True):
        value = read(hb)
        if value is not None:
            family.add(node, value)


def _add_gpus(families: list[Family], hb: Heartbeat, node: str) -> None:
    """One series per GPU, labelled gpu (its index), name and node, sorted as the text format writes them."""
    for gpu in hb.gpus or ():
        labels = f'gpu="{gpu.index}",name="{escape_label(gpu.name or "")}",{node}'
        for family, (_, _, read) in zip(families, GPU_GAUGES, strict=True):
            value = read(gpu)
            if value is not None:
                family.add_labelled(labels, value)
