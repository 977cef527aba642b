"""Pydantic models of every message on the wire, as docs/protocol.md defines them.

This module is the schema only: no encoding (see ``shared.codec``), no I/O.

Conventions, repeated from docs/protocol.md:
- a field ending in ``_at`` is a wall-clock instant, UNIX epoch seconds as float64;
- a field ending in ``_s`` is a duration in seconds;
- ``_bytes``, ``_bytes_per_s``, ``_percent`` (0-100) and ``_celsius`` say their unit;
- an optional field that is absent (or nil) means "not measured", never zero.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.limits import (
    LABEL_KEY_PATTERN,
    MAX_ACK_EVERY,
    MAX_CORES,
    MAX_DISKS,
    MAX_GPUS,
    MAX_HISTORY_POINTS,
    MAX_INTERFACES,
    MAX_INTERVAL_S,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_NODES_PER_MESSAGE,
    MAX_SENSORS,
    MAX_SHORT_TEXT,
    MAX_TOP_PROCESSES,
    MIN_INTERVAL_S,
    NODE_CREDENTIAL_PATTERN,
    NODE_ID_MAX_LEN,
    NODE_ID_PATTERN,
    PROTOCOL_VERSION,
)

NodeId = Annotated[str, Field(min_length=1, max_length=NODE_ID_MAX_LEN, pattern=NODE_ID_PATTERN)]
ShortText = Annotated[str, Field(max_length=MAX_SHORT_TEXT)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
IntervalSeconds = Annotated[float, Field(ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)]
NonNegInt = Annotated[int, Field(ge=0, le=2**63 - 1)]
Seq = Annotated[int, Field(ge=1, le=2**63 - 1)]
# Epoch seconds; bounded so a garbage value cannot overflow a datetime.
EpochSeconds = Annotated[float, Field(ge=0.0, le=32_503_680_000.0)]
Celsius = Annotated[float, Field(ge=-273.15, le=1000.0)]
# [total, used, available] bytes; agents before issue 14 send [total, used], still accepted.
DiskPair = Annotated[list[NonNegInt], Field(min_length=2, max_length=3)]
RatePair = Annotated[list[NonNegFloat], Field(min_length=2, max_length=2)]
NodeState: TypeAlias = Literal["online", "stale", "offline"]
# Operator-set node labels (agent --label KEY=VALUE), bounded in shared.limits.
LabelMap = Annotated[
    dict[
        Annotated[str, Field(pattern=LABEL_KEY_PATTERN)],
        Annotated[str, Field(min_length=1, max_length=MAX_LABEL_VALUE)],
    ],
    Field(max_length=MAX_LABELS),
]


class WireModel(BaseModel):
    """Base of every wire model: immutable, no unknown keys, no NaN or inf."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class NodeFacts(WireModel):
    """What does not change while an agent runs; sent once, in the hello."""

    hostname: ShortText
    os: ShortText
    os_release: ShortText
    platform: ShortText
    arch: ShortText
    cpu_count_logical: Annotated[int, Field(ge=1, le=MAX_CORES)] | None = None
    cpu_count_physical: Annotated[int, Field(ge=1, le=MAX_CORES)] | None = None
    memory_total_bytes: NonNegInt
    boot_time_at: EpochSeconds | None = None
    agent_version: ShortText
    python_version: ShortText
    in_container: bool = False
    # The operator's labels for the node (agent --label); absent: none. Facts, not status: they are sent
    # to viewers only when they change, and a new hello replaces them with the rest of the facts.
    labels: LabelMap | None = None


class ProcessUsage(WireModel):
    """One of the top processes, by CPU or by memory."""

    pid: NonNegInt
    name: ShortText
    cpu_percent: NonNegFloat
    rss_bytes: NonNegInt


class GpuReading(WireModel):
    """One GPU of the node, as its vendor's library reports it (NVML for NVIDIA); a slow-tier detail.

    Vendor-neutral names: only ``index`` is required, and a value the device cannot give is absent.
    """

    index: Annotated[int, Field(ge=0, le=65535)]  # the vendor's device index (NVML's), from 0
    name: ShortText | None = None  # the product name, e.g. "NVIDIA A100-SXM4-40GB"
    utilization_percent: Percent | None = None  # share of the last sample period a kernel ran
    memory_used_bytes: NonNegInt | None = None
    memory_total_bytes: NonNegInt | None = None
    temperature_celsius: Celsius | None = None  # the GPU die's sensor
    power_watts: NonNegFloat | None = None  # the board's draw


class Hello(WireModel):
    """First message on /api/v1/ingest: who the agent is and how often it speaks."""

    type: Literal["hello"] = "hello"
    protocol_version: Annotated[int, Field(ge=1, le=65535)] = PROTOCOL_VERSION
    node_id: NodeId
    agent_instance_id: Annotated[str, Field(min_length=1, max_length=64)]
    interval_s: IntervalSeconds
    sent_at: EpochSeconds
    dropped_samples: NonNegInt = 0
    # Ack me at least every this many samples (half my backlog, say); absent means every sample.
    ack_every: Annotated[int, Field(ge=1, le=MAX_ACK_EVERY)] | None = None
    facts: NodeFacts
    # HMAC of the node id and the collector's host name under the node key (docs/security.md, 3.1);
    # absent: an agent without a node key, trusted by the old instance-id rules until the node id has a key.
    node_credential: Annotated[str, Field(pattern=NODE_CREDENTIAL_PATTERN)] | None = None
    # The highest seq this instance has taken when it sends the hello (0 before its first sample):
    # bounds the seqs it may send and the ack it may be given (docs/security.md, 3.2).
    newest_seq: NonNegInt | None = None


class Heartbeat(WireModel):
    """One sample of a node; ``seq`` counts up from 1 per agent instance."""

    type: Literal["heartbeat"] = "heartbeat"
    seq: Seq
    sampled_at: EpochSeconds
    cpu_percent: Percent | None = None
    cpu_per_core_percent: Annotated[list[Percent], Field(max_length=MAX_CORES)] | None = None
    load_avg: Annotated[list[NonNegFloat], Field(min_length=3, max_length=3)] | None = None
    mem_used_bytes: NonNegInt | None = None
    mem_available_bytes: NonNegInt | None = None
    mem_percent: Percent | None = None
    swap_total_bytes: NonNegInt | None = None
    swap_used_bytes: NonNegInt | None = None
    swap_percent: Percent | None = None
    # mount point -> [total_bytes, used_bytes, available_bytes]; fullness = used / (used + available), as df
    # computes Use%; maps keep the heartbeat under 600 bytes
    disks: Annotated[dict[ShortText, DiskPair], Field(max_length=MAX_DISKS)] | None = None
    # Slow-tier details, only in the heartbeat that carries a fresh slow reading (docs/protocol.md 5.2).
    # mount point -> [inodes_total, inodes_free]
    disk_inodes: Annotated[dict[ShortText, Annotated[list[NonNegInt], Field(min_length=2, max_length=2)]],
                           Field(max_length=MAX_DISKS)] | None = None  # fmt: skip
    disks_read_only: Annotated[list[ShortText], Field(max_length=MAX_DISKS)] | None = None
    # mode (user, nice, system, iowait, irq, softirq, steal) -> percent of all CPU time
    cpu_mode_percent: Annotated[dict[ShortText, Percent], Field(max_length=16)] | None = None
    # cpu, io, memory -> [some_avg10, full_avg10] (full absent for cpu before Linux 5.13)
    pressure_avg10_percent: Annotated[dict[ShortText, Annotated[list[Percent], Field(min_length=1, max_length=2)]],
                                      Field(max_length=8)] | None = None  # fmt: skip
    # disk -> [read_bytes_per_s, write_bytes_per_s, reads_per_s, writes_per_s, busy_percent, await_ms]
    disk_devices: Annotated[dict[ShortText, Annotated[list[NonNegFloat], Field(min_length=6, max_length=6)]],
                            Field(max_length=MAX_DISKS)] | None = None  # fmt: skip
    # interface -> [rx_errors, rx_dropped, tx_errors, tx_dropped], cumulative counts
    net_interface_errors: Annotated[dict[ShortText, Annotated[list[NonNegInt], Field(min_length=4, max_length=4)]],
                                    Field(max_length=MAX_INTERFACES)] | None = None  # fmt: skip
    net_interfaces_down: Annotated[list[ShortText], Field(max_length=MAX_INTERFACES)] | None = None
    tcp_established: NonNegInt | None = None
    tcp_time_wait: NonNegInt | None = None
    fd_allocated: NonNegInt | None = None
    fd_max: NonNegInt | None = None
    # Absent: no GPU, or no NVML library or driver on the node (docs/protocol.md 5.2).
    gpus: Annotated[list[GpuReading], Field(max_length=MAX_GPUS)] | None = None
    disk_read_bytes_per_s: NonNegFloat | None = None
    disk_write_bytes_per_s: NonNegFloat | None = None
    net_rx_bytes_per_s: NonNegFloat | None = None
    net_tx_bytes_per_s: NonNegFloat | None = None
    # interface name -> [rx_bytes_per_s, tx_bytes_per_s]
    net_interfaces: Annotated[dict[ShortText, RatePair], Field(max_length=MAX_INTERFACES)] | None = None
    process_count: NonNegInt | None = None
    uptime_s: NonNegFloat | None = None
    # sensor label -> degrees Celsius
    temperatures: Annotated[dict[ShortText, Celsius], Field(max_length=MAX_SENSORS)] | None = None
    cgroup_cpu_limit_cores: NonNegFloat | None = None
    cgroup_memory_limit_bytes: NonNegInt | None = None
    top_cpu: Annotated[list[ProcessUsage], Field(max_length=MAX_TOP_PROCESSES)] | None = None
    top_memory: Annotated[list[ProcessUsage], Field(max_length=MAX_TOP_PROCESSES)] | None = None
    # Both are cumulative since the agent started; absent means zero.
    sample_errors: NonNegInt | None = None
    late_ticks: NonNegInt | None = None


class Ack(WireModel):
    """Cumulative ack: the collector holds every sample up to and including ``seq``."""

    type: Literal["ack"] = "ack"
    seq: NonNegInt


class Error(WireModel):
    """Sent just before the collector closes a connection for a reason of the peer's."""

    type: Literal["error"] = "error"
    reason: Annotated[str, Field(max_length=64)]
    detail: Annotated[str, Field(max_length=1024)]


class NodeStatus(WireModel):
    """The collector's judgement of one node, by the collector's own clock."""

    node_id: NodeId
    state: NodeState
    state_since_at: EpochSeconds
    reason: ShortText | None = None
    last_seen_at: EpochSeconds | None = None
    interval_s: IntervalSeconds
    agent_instance_id: Annotated[str, Field(min_length=1, max_length=64)]
    connected: bool
    last_seq: NonNegInt
    clock_skew_s: float | None = None
    dropped_samples: NonNegInt = 0
    missing_samples: NonNegInt = 0


Series = Annotated[list[float | None], Field(max_length=MAX_HISTORY_POINTS)]


class _Series(WireModel):
    """The seven series a ``History`` and a ranged answer's ``RangeSeries`` both carry, named once."""

    cpu_percent: Series
    mem_percent: Series
    load_1: Series
    net_rx_bytes_per_s: Series
    net_tx_bytes_per_s: Series
    disk_read_bytes_per_s: Series
    disk_write_bytes_per_s: Series


class _Points(WireModel):
    """When each point of a ``History`` was sampled: its first keys on the wire."""

    seq: Annotated[list[Seq], Field(max_length=MAX_HISTORY_POINTS)]
    sampled_at: Annotated[list[EpochSeconds], Field(max_length=MAX_HISTORY_POINTS)]


class History(_Series, _Points):  # pydantic puts the last base's fields first: seq, sampled_at, then the series
    """Recent samples of one node as parallel columns, oldest first; nil is a gap."""


class NodeEntry(WireModel):
    """One node as a viewer sees it: status, and whatever else changed."""

    status: NodeStatus
    facts: NodeFacts | None = None
    last_sample: Heartbeat | None = None
    history: History | None = None


class Snapshot(WireModel):
    """First message on /api/v1/subscribe: every node, with recent history."""

    type: Literal["snapshot"] = "snapshot"
    server_time_at: EpochSeconds
    nodes: Annotated[list[NodeEntry], Field(max_length=MAX_NODES_PER_MESSAGE)]


class Update(WireModel):
    """A batch of changes since the last snapshot or update, latest state per node."""

    type: Literal["update"] = "update"
    server_time_at: EpochSeconds
    nodes: Annotated[list[NodeEntry], Field(max_length=MAX_NODES_PER_MESSAGE)] = []
    removed: Annotated[list[NodeId], Field(max_length=MAX_NODES_PER_MESSAGE)] = []


class HistoryRequest(WireModel):
    """Viewer to collector: send me the history of one node (its in-memory window, or a range).

    With none of ``from_at``, ``to_at`` and ``step_s`` it is a version-1 request: the node's
    in-memory window. With any of them it asks for a range, answered in ``NodeHistory.range``.
    """

    type: Literal["history_request"] = "history_request"
    node_id: NodeId
    from_at: EpochSeconds | None = None  # default: to_at minus one hour
    to_at: EpochSeconds | None = None  # default: now (or from_at, if that is later)
    step_s: Annotated[float, Field(gt=0.0)] | None = None  # default: the finest the range allows

    @model_validator(mode="after")
    def _from_before_to(self) -> Self:
        if self.from_at is not None and self.to_at is not None and self.from_at > self.to_at:
            raise ValueError(f"expected from_at <= to_at, got from_at={self.from_at!r} to_at={self.to_at!r}")
        return self

    @property
    def ranged(self) -> bool:
        """Whether this asks for a range (tiered, from the store) rather than the in-memory window."""
        return self.from_at is not None or self.to_at is not None or self.step_s is not None


class RangeSeries(_Series):
    """One value per point of a ranged answer for each series of ``History``; nil: no sample had it."""


# [from_at, to_at] of a period without samples.
Gap = Annotated[list[EpochSeconds], Field(min_length=2, max_length=2)]


class HistoryRange(WireModel):
    """A ranged answer: the map ``GET /api/v1/nodes/{node_id}/history`` answers (docs/protocol.md 8.2.1)."""

    server_time_at: EpochSeconds
    from_at: EpochSeconds
    to_at: EpochSeconds
    node_id: NodeId
    tier: Annotated[str, Field(min_length=1, max_length=16)]  # "raw", "1m" or "1h" by default
    step_s: NonNegFloat
    at: Annotated[list[EpochSeconds], Field(max_length=MAX_HISTORY_POINTS)]
    count: Annotated[list[NonNegInt], Field(max_length=MAX_HISTORY_POINTS)]
    avg: RangeSeries
    min: RangeSeries | None = None  # rollup tiers only
    max: RangeSeries | None = None  # rollup tiers only
    seq: Annotated[list[Seq], Field(max_length=MAX_HISTORY_POINTS)] | None = None  # raw tier only
    gaps: Annotated[list[Gap], Field(max_length=MAX_HISTORY_POINTS)]


class NodeHistory(WireModel):
    """Collector to viewer: the answer to a ``history_request``.

    A version-1 request gets ``history`` and no ``range``; a ranged request gets its points in
    ``range`` and an empty ``history`` (kept so the version-1 shape stays valid).
    """

    type: Literal["history"] = "history"
    node_id: NodeId
    history: History
    range: HistoryRange | None = None


Message: TypeAlias = Annotated[
    Hello | Heartbeat | Ack | Error | Snapshot | Update | HistoryRequest | NodeHistory,
    Field(discriminator="type"),
]

# Every top-level message class, for docs/protocol.md's completeness test.
MESSAGE_TYPES: tuple[type[WireModel], ...] = (
    Hello,
    Heartbeat,
    Ack,
    Error,
    Snapshot,
    Update,
    HistoryRequest,
    NodeHistory,
)
