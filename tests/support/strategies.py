"""Hypothesis strategies that build every wire model within its field constraints.

Written out by hand rather than with ``st.from_type``: hypothesis cannot read
pydantic's ``Field(ge=..., pattern=...)`` metadata, and a strategy that builds
invalid models would test pydantic, not the codec. Not a test module.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from shared.limits import MAX_CORES
from shared.messages import (
    Ack,
    Error,
    Heartbeat,
    Hello,
    History,
    HistoryRequest,
    NodeEntry,
    NodeFacts,
    NodeHistory,
    NodeStatus,
    ProcessUsage,
    Snapshot,
    Update,
    WireModel,
)

MAX_INT64 = 2**63 - 1
MAX_EPOCH_S = 32_503_680_000.0

# Small collections keep examples fast; the limits themselves are tested by hand.
SMALL = 4


def floats_in(min_value: float, max_value: float) -> st.SearchStrategy[float]:
    """Finite floats in [min_value, max_value], and whole numbers too: strict float fields accept ints."""
    as_float = st.floats(min_value=min_value, max_value=max_value, allow_nan=False, allow_infinity=False)
    as_int = st.integers(min_value=math.ceil(min_value), max_value=math.floor(max_value))
    return as_float | as_int


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Either ``None`` (absent, "not measured") or a value."""
    return st.none() | strategy


non_neg_ints = st.integers(min_value=0, max_value=MAX_INT64)
seqs = st.integers(min_value=1, max_value=MAX_INT64)
percents = floats_in(0.0, 100.0)
non_neg_floats = floats_in(0.0, 1e300)
epochs = floats_in(0.0, MAX_EPOCH_S)
intervals = floats_in(0.05, 3600.0)
short_text = st.text(max_size=40)
node_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,40}", fullmatch=True)
instance_ids = st.text(min_size=1, max_size=64)
core_counts = st.integers(min_value=1, max_value=MAX_CORES)


def _keyed(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(short_text, values, max_size=SMALL)


node_facts: st.SearchStrategy[NodeFacts] = st.builds(
    NodeFacts,
    hostname=short_text,
    os=short_text,
    os_release=short_text,
    platform=short_text,
    arch=short_text,
    cpu_count_logical=optional(core_counts),
    cpu_count_physical=optional(core_counts),
    memory_total_bytes=non_neg_ints,
    boot_time_at=optional(epochs),
    agent_version=short_text,
    python_version=short_text,
    in_container=st.booleans(),
)

process_usages: st.SearchStrategy[ProcessUsage] = st.builds(
    ProcessUsage, pid=non_neg_ints, name=short_text, cpu_percent=non_neg_floats, rss_bytes=non_neg_ints
)

hellos: st.SearchStrategy[Hello] = st.builds(
    Hello,
    node_id=node_ids,
    agent_instance_id=instance_ids,
    interval_s=intervals,
    sent_at=epochs,
    dropped_samples=non_neg_ints,
    facts=node_facts,
)

heartbeats: st.SearchStrategy[Heartbeat] = st.builds(
    Heartbeat,
    seq=seqs,
    sampled_at=epochs,
    cpu_percent=optional(percents),
    cpu_per_core_percent=optional(st.lists(percents, max_size=16)),
    load_avg=optional(st.lists(non_neg_floats, min_size=3, max_size=3)),
    mem_used_bytes=optional(non_neg_ints),
    mem_available_bytes=optional(non_neg_ints),
    mem_percent=optional(percents),
    swap_total_bytes=optional(non_neg_ints),
    swap_used_bytes=optional(non_neg_ints),
    swap_percent=optional(percents),
    disks=optional(_keyed(st.lists(non_neg_ints, min_size=2, max_size=2))),
    disk_read_bytes_per_s=optional(non_neg_floats),
    disk_write_bytes_per_s=optional(non_neg_floats),
    net_rx_bytes_per_s=optional(non_neg_floats),
    net_tx_bytes_per_s=optional(non_neg_floats),
    net_interfaces=optional(_keyed(st.lists(non_neg_floats, min_size=2, max_size=2))),
    process_count=optional(non_neg_ints),
    uptime_s=optional(non_neg_floats),
    temperatures=optional(_keyed(floats_in(-273.15, 1000.0))),
    cgroup_cpu_limit_cores=optional(non_neg_floats),
    cgroup_memory_limit_bytes=optional(non_neg_ints),
    top_cpu=optional(st.lists(process_usages, max_size=5)),
    top_memory=optional(st.lists(process_usages, max_size=5)),
    sample_errors=optional(non_neg_ints),
    late_ticks=optional(non_neg_ints),
)

acks: st.SearchStrategy[Ack] = st.builds(Ack, seq=non_neg_ints)

errors: st.SearchStrategy[Error] = st.builds(Error, reason=st.text(max_size=64), detail=st.text(max_size=200))

node_statuses: st.SearchStrategy[NodeStatus] = st.builds(
    NodeStatus,
    node_id=node_ids,
    state=st.sampled_from(["online", "stale", "offline"]),
    state_since_at=epochs,
    reason=optional(short_text),
    last_seen_at=optional(epochs),
    interval_s=intervals,
    agent_instance_id=instance_ids,
    connected=st.booleans(),
    last_seq=non_neg_ints,
    clock_skew_s=optional(floats_in(-1e12, 1e12)),
    dropped_samples=non_neg_ints,
    missing_samples=non_neg_ints,
)


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Parallel columns of one length, with gaps (nil) in the value columns."""
    length = draw(st.integers(min_value=0, max_value=SMALL))

    def column(values: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(values, min_size=length, max_size=length))

    gap_or = optional
    return History(
        seq=column(seqs),
        sampled_at=column(epochs),
        cpu_percent=column(gap_or(percents)),
        mem_percent=column(gap_or(percents)),
        load_1=column(gap_or(non_neg_floats)),
        net_rx_bytes_per_s=column(gap_or(non_neg_floats)),
        net_tx_bytes_per_s=column(gap_or(non_neg_floats)),
        disk_read_bytes_per_s=column(gap_or(non_neg_floats)),
        disk_write_bytes_per_s=column(gap_or(non_neg_floats)),
    )


node_entries: st.SearchStrategy[NodeEntry] = st.builds(
    NodeEntry,
    status=node_statuses,
    facts=optional(node_facts),
    last_sample=optional(heartbeats),
    history=optional(histories()),
)

snapshots: st.SearchStrategy[Snapshot] = st.builds(
    Snapshot, server_time_at=epochs, nodes=st.lists(node_entries, max_size=3)
)

updates: st.SearchStrategy[Update] = st.builds(
    Update,
    server_time_at=epochs,
    nodes=st.lists(node_entries, max_size=3),
    removed=st.lists(node_ids, max_size=SMALL),
)

history_requests: st.SearchStrategy[HistoryRequest] = st.builds(HistoryRequest, node_id=node_ids)

node_histories: st.SearchStrategy[NodeHistory] = st.builds(NodeHistory, node_id=node_ids, history=histories())

# One strategy per top-level message class, keyed by class so a test can check none is missing.
MESSAGE_STRATEGIES: dict[type[WireModel], st.SearchStrategy[Any]] = {
    Hello: hellos,
    Heartbeat: heartbeats,
    Ack: acks,
    Error: errors,
    Snapshot: snapshots,
    Update: updates,
    HistoryRequest: history_requests,
    NodeHistory: node_histories,
}

messages: st.SearchStrategy[Any] = st.one_of(*MESSAGE_STRATEGIES.values())
