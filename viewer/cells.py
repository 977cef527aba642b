"""What each table cell of one node says: its text, sort key, tooltip, and whether it is dimmed.

The truth rule lives here: a stale or offline node's figures are old, so its metric
cells are dimmed (stale) or shown as "—" (offline) with the last value and its time
in the tooltip, and they sort as "not measured" (last), never to the top of a CPU sort.

Pure functions of a ``NodeRow`` and the collector-clock instant; no Qt (the model turns
these into roles). Every returned string may hold peer text: the caller shows it as
plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from shared.messages import Heartbeat, History, NodeEntry, NodeFacts, NodeStatus
from viewer.details import SlowDetails, carries_details
from viewer.format import (
    format_age,
    format_clock,
    format_duration,
    format_load,
    format_percent,
    format_rx_tx,
    fullest_disk_name,
    fullest_disk_percent,
)
from viewer.thresholds import DEFAULT_THRESHOLDS, MARKS, Level, Threshold, load_per_core


class Column(IntEnum):
    """The table's columns, in display order."""

    NODE = 0  # first, so a dataChanged over columns 1.. never touches it (see NodeTableModel)
    STATE = 1  # shown first: the window moves this section visually
    CPU = 2
    LOAD = 3
    MEMORY = 4
    DISK = 5
    NET = 6
    UPTIME = 7
    LAST_SEEN = 8


HEADERS: Final[dict[Column, str]] = {
    Column.NODE: "Node",
    Column.STATE: "State",
    Column.CPU: "CPU",
    Column.LOAD: "Load 1/5/15",
    Column.MEMORY: "Memory",
    Column.DISK: "Disk",
    Column.NET: "Net rx/tx",
    Column.UPTIME: "Uptime",
    Column.LAST_SEEN: "Last seen",
}
COLUMN_COUNT: Final = len(Column)
# Figures measured by the agent: old once the node stops speaking.
METRIC_COLUMNS: Final = frozenset({Column.CPU, Column.LOAD, Column.MEMORY, Column.DISK, Column.NET, Column.UPTIME})
# Problems first: the default order (State, descending) puts offline, then stale, then online.
STATE_ORDER: Final[dict[str, int]] = {"online": 0, "stale": 1, "offline": 2}
# Within one state the default order is by CPU (descending): 0-100 fits below one state step.
_STATE_STEP: Final = 1000.0
GONE_TEXT: Final = "—"

# Recent history kept per row (the snapshot sends 60 points; a selected node's full history is
# asked for on selection): a hostile collector cannot park 100,000 points on each of 20,000 rows.
ROW_HISTORY_POINTS: Final = 120

# The collector's transition reasons (collector/cache.py), in words for people.
REASON_WORDS: Final[dict[str, str]] = {
    "hello": "the agent connected",
    "heartbeat_resumed": "heartbeats resumed",
    "no_heartbeat": "no heartbeat arrived in time",
    "agent_closed": "the agent closed its connection",
}


@dataclass(slots=True)
class NodeRow:
    """What the table knows about one node; mutated in place as batches arrive."""

    node_id: str
    status: NodeStatus
    facts: NodeFacts | None = None
    sample: Heartbeat | None = None
    history: History | None = None
    # Display strings of every column but "last seen", built on the first paint after a change:
    # a paint asks for each visible cell several times, and most rows are never visible.
    display: list[str] | None = None
    # Each column's threshold level, built with ``display`` (only live figures are judged).
    levels: list[Level] | None = None
    # The slow-tier fields' last values (they come every ~5 s); None until one came.
    details: SlowDetails | None = None

    def __post_init__(self) -> None:
        self.keep_details()

    def keep_details(self) -> None:
        """Keep the slow-tier fields of the current sample, if it carries any."""
        sample = self.sample
        if sample is not None and carries_details(sample):
            if self.details is None:
                self.details = SlowDetails()
            self.details.absorb(sample)

    def absorb(self, entry: NodeEntry, *, replace: bool) -> None:
        """Take ``entry``'s fields; ``replace`` (a snapshot) also clears what the entry lacks."""
        self.display = None
        self.levels = None
        self.status = entry.status
        if replace or entry.facts is not None:
            self.facts = entry.facts
        if replace or entry.last_sample is not None:
            self.sample = entry.last_sample
            self.keep_details()
        if replace or entry.history is not None:
            self.history = bounded_history(entry.history)


def bounded_history(history: History | None, points: int = ROW_HISTORY_POINTS) -> History | None:
    """``history`` cut to its newest ``points`` (copied only when longer)."""
    if history is None or len(history.seq) <= points:
        return history
    # model_copy skips validation on purpose: slices of lists the codec validated.
    return history.model_copy(update={name: values[-points:] for name, values in history if isinstance(values, list)})


def is_current(row: NodeRow) -> bool:
    """True if the node's figures are live (it is online)."""
    return row.status.state == "online"


def is_dimmed(row: NodeRow, column: int) -> bool:
    """True for a metric cell whose figure is old (the node is stale or offline)."""
    return column in METRIC_COLUMNS and not is_current(row)


def display_strings(row: NodeRow) -> list[str]:
    """Every column's text (the "last seen" slot is filled live by the model), and ``row.levels``.

    A figure at a threshold level starts with its mark ("▲ 85.0 %"), so the level shows without colour.
    """
    texts = [""] * COLUMN_COUNT
    levels = [Level.NORMAL] * COLUMN_COUNT
    row.levels = levels
    texts[Column.NODE] = row.node_id
    texts[Column.STATE] = row.status.state
    sample = row.sample
    if sample is None:
        return texts
    if row.status.state == "offline":
        for column in METRIC_COLUMNS:
            texts[column] = GONE_TEXT
        return texts
    live = is_current(row)
    for column in METRIC_COLUMNS:
        text = metric_text(sample, Column(column))
        if live and column in THRESHOLD_COLUMNS and text:
            levels[column] = level_of(row, Column(column))
            text = MARKS[levels[column]] + text
        texts[column] = text
    return texts


# The columns judged against thresholds (viewer.thresholds).
THRESHOLD_COLUMNS: Final = frozenset({Column.CPU, Column.LOAD, Column.MEMORY, Column.DISK})


def _threshold_value(row: NodeRow, column: Column) -> tuple[Threshold, float | None, str]:
    """The threshold, the value it judges and the words for it, of one threshold column."""
    sample = row.sample
    assert sample is not None
    thresholds = DEFAULT_THRESHOLDS
    if column is Column.CPU:
        return thresholds.cpu, sample.cpu_percent, "CPU"
    if column is Column.MEMORY:
        return thresholds.memory, sample.mem_percent, "Memory"
    if column is Column.DISK:
        return thresholds.disk, fullest_disk_percent(sample.disks), "The fullest disk"
    cores: float | None = None if row.facts is None else row.facts.cpu_count_logical
    if sample.cgroup_cpu_limit_cores:  # a container may use fewer cores than the machine has
        cores = min(cores or sample.cgroup_cpu_limit_cores, sample.cgroup_cpu_limit_cores)
    load_1 = None if sample.load_avg is None else sample.load_avg[0]
    return thresholds.load_per_core, load_per_core(load_1, cores), "Load"


def level_of(row: NodeRow, column: Column) -> Level:
    """The threshold level of ``row``'s live figure in ``column`` (normal for other columns)."""
    if column not in THRESHOLD_COLUMNS or row.sample is None or not is_current(row):
        return Level.NORMAL
    threshold, value, _what = _threshold_value(row, column)
    return threshold.level(value)


def threshold_words(row: NodeRow, column: Column) -> str:
    """E.g. 'CPU 95.0 % is at or above the critical threshold (90 %)', or '' when the figure is normal."""
    if level_of(row, column) is Level.NORMAL:
        return ""
    threshold, value, what = _threshold_value(row, column)
    return "" if value is None else threshold.explain(value, what)


def cell_percent(value: float | None) -> str:
    """A table percentage: '42.0 %', but a full '100 %', so a critical '▲▲ 100 %' fits its column."""
    return "100 %" if value is not None and value >= 99.95 else format_percent(value)  # 99.95 prints as 100.0


def metric_text(sample: Heartbeat, column: Column) -> str:  # noqa: PLR0911 - one branch per column
    """The text of one metric column for ``sample``."""
    if column is Column.CPU:
        return cell_percent(sample.cpu_percent)
    if column is Column.LOAD:
        return format_load(sample.load_avg)
    if column is Column.MEMORY:
        return cell_percent(sample.mem_percent)
    if column is Column.DISK:
        return cell_percent(fullest_disk_percent(sample.disks))
    if column is Column.NET:
        return format_rx_tx(sample.net_rx_bytes_per_s, sample.net_tx_bytes_per_s)
    if column is Column.UPTIME:
        return format_duration(sample.uptime_s)
    return ""


def sort_key(row: NodeRow, column: int, age_s: float | None) -> float | str | None:  # noqa: PLR0911
    """The value ``row`` sorts by in ``column``; None (sorted last either way) when not measured or old."""
    sample = row.sample
    if column == Column.STATE:
        cpu = sample.cpu_percent if sample is not None and is_current(row) else None
        return STATE_ORDER[row.status.state] * _STATE_STEP + (cpu or 0.0)
    if column == Column.NODE:
        return row.node_id
    if column == Column.LAST_SEEN:
        return age_s
    if sample is None or not is_current(row):
        return None
    if column == Column.CPU:
        return sample.cpu_percent
    if column == Column.LOAD:
        return None if sample.load_avg is None else sample.load_avg[0]
    if column == Column.MEMORY:
        return sample.mem_percent
    if column == Column.DISK:
        return fullest_disk_percent(sample.disks)
    if column == Column.NET:
        rx, tx = sample.net_rx_bytes_per_s, sample.net_tx_bytes_per_s
        return None if rx is None and tx is None else (rx or 0.0) + (tx or 0.0)
    return sample.uptime_s


def tooltip(row: NodeRow, column: Column, server_offset_s: float) -> str | None:
    """The cell's tooltip as plain text (it may hold peer text); None for none.

    ``server_offset_s`` is the collector's clock minus ours, to show collector instants in local time.
    """
    status = row.status
    if column is Column.STATE:
        return describe_state(status, server_offset_s)
    if column is Column.NODE and row.facts is not None:
        return f"{row.facts.hostname} · {row.facts.os} {row.facts.os_release}"
    if column in METRIC_COLUMNS and row.sample is not None and not is_current(row):
        seen = format_clock(None if status.last_seen_at is None else status.last_seen_at - server_offset_s)
        value = metric_text(row.sample, column) or "not measured"
        return f"{status.state}: last value {value}" + (f" at {seen}" if seen else "")
    words = threshold_words(row, column)
    if column is Column.DISK and row.sample is not None:
        mount = fullest_disk_name(row.sample.disks)
        return f"{mount}: {words}" if mount and words else mount
    return words or None


def reason_words(reason: str | None) -> str:
    """A collector transition reason in words (unknown reasons are shown as sent)."""
    if not reason:
        return ""
    return REASON_WORDS.get(reason, reason)


def describe_state(status: NodeStatus, server_offset_s: float, now_at: float | None = None) -> str:
    """E.g. 'offline since 12:00:01 (4 m 10 s): the agent closed its connection'.

    ``now_at`` (local wall clock) adds how long the state has lasted.
    """
    since_local = status.state_since_at - server_offset_s
    text = f"{status.state} since {format_clock(since_local)}"
    if now_at is not None:
        text += f" ({format_duration(now_at - since_local)})"
    words = reason_words(status.reason)
    return f"{text}: {words}" if words else text


def describe_last_seen(status: NodeStatus, server_offset_s: float, now_at: float) -> str:
    """E.g. '3 s ago (12:03:04)', or 'never'."""
    if status.last_seen_at is None:
        return "never"
    seen_local = status.last_seen_at - server_offset_s
    return f"{format_age(max(0.0, now_at - seen_local))} ({format_clock(seen_local)})"
