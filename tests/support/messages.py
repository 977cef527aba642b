"""Builders of valid wire messages for every test: one epoch, plain functions, no randomness.

Each builder returns a model that passes the schema, with readable defaults a
test overrides by keyword. Every timestamp counts from ``WALL_T0``, so a test
that mixes a hello, a heartbeat and a snapshot sees one consistent clock.
Not here: invalid frames (those belong in each test's table) or the random
models of ``tests.support.strategies``.
"""

from __future__ import annotations

from typing import Any

from shared.messages import Heartbeat, Hello, History, NodeEntry, NodeFacts, NodeState, NodeStatus, Snapshot, Update

WALL_T0 = 1_700_000_000.0  # a fixed wall-clock instant (2023-11-14), far from the epoch and from "now"
GIB = 1024**3


def facts(hostname: str = "host-a") -> NodeFacts:
    """Static facts of a small Linux box."""
    return NodeFacts(
        hostname=hostname,
        os="Linux",
        os_release="6.1.0",
        platform="Debian 12",
        arch="x86_64",
        cpu_count_logical=4,
        cpu_count_physical=2,
        memory_total_bytes=8 * GIB,
        boot_time_at=WALL_T0 - 86_400,
        agent_version="0.1.0",
        python_version="3.11.7",
    )


def hello(
    node_id: str = "node-a",
    instance: str = "inst-1",
    *,
    interval_s: float = 1.0,
    sent_at: float = WALL_T0,
    dropped: int = 0,
    hostname: str = "host-a",
    **extra: Any,
) -> Hello:
    """A hello from ``node_id``'s agent ``instance``; ``extra`` sets any other field (e.g. ``ack_every``)."""
    return Hello(
        node_id=node_id,
        agent_instance_id=instance,
        interval_s=interval_s,
        sent_at=sent_at,
        dropped_samples=dropped,
        facts=facts(hostname),
        **extra,
    )


def heartbeat(
    seq: int = 1, cpu: float = 10.0, sampled_at: float | None = None, mem: float = 40.0, **extra: Any
) -> Heartbeat:
    """A heartbeat with ``seq``, sampled one second apart from ``WALL_T0`` by default.

    ``extra`` sets or replaces any other field: ``heartbeat(3, disks={})``.
    The defaults fill every column a viewer shows (disk 90 % on /data, uptime 3 h 05 m).
    """
    fields: dict[str, Any] = {
        "load_avg": [0.5, 0.4, 0.3],
        "disks": {"/": [100 * GIB, 42 * GIB], "/data": [10 * GIB, 9 * GIB]},
        "net_rx_bytes_per_s": 1536.0,
        "net_tx_bytes_per_s": 2.5 * 1024**2,
        "uptime_s": 3 * 3600 + 5 * 60,
        **extra,
    }
    return Heartbeat(
        seq=seq,
        sampled_at=WALL_T0 + seq if sampled_at is None else sampled_at,
        cpu_percent=cpu,
        mem_percent=mem,
        **fields,
    )


def status(
    node_id: str, state: NodeState = "online", last_seen_at: float = WALL_T0, seq: int = 1, reason: str | None = None
) -> NodeStatus:
    """A status as the collector reports it, in ``state`` for the last minute."""
    return NodeStatus(
        node_id=node_id,
        state=state,
        state_since_at=WALL_T0 - 60,
        reason=reason,
        last_seen_at=last_seen_at,
        interval_s=1.0,
        agent_instance_id=f"{node_id}-instance",
        connected=state != "offline",
        last_seq=seq,
    )


def history(points: int = 5, end_at: float = WALL_T0) -> History:
    """``points`` samples one second apart ending at ``end_at``, values 10, 11, 12, ..."""
    times = [end_at - (points - 1 - i) for i in range(points)]
    values: list[float | None] = [float(10 + i) for i in range(points)]
    return History(
        seq=list(range(1, points + 1)),
        sampled_at=times,
        cpu_percent=values,
        mem_percent=values,
        load_1=values,
        net_rx_bytes_per_s=values,
        net_tx_bytes_per_s=values,
        disk_read_bytes_per_s=values,
        disk_write_bytes_per_s=values,
    )


def entry(
    node_id: str, state: NodeState = "online", seq: int = 1, cpu: float = 12.5, *, full: bool = True
) -> NodeEntry:
    """A node entry seen at ``WALL_T0``; ``full`` adds facts and history as a snapshot carries them.

    Its last sample is the newest point of its history (both at ``WALL_T0``), so a chart holds no extra point.
    """
    return NodeEntry(
        status=status(node_id, state, seq=seq),
        facts=facts(node_id) if full else None,
        last_sample=heartbeat(seq, cpu, sampled_at=WALL_T0),
        history=history() if full else None,
    )


def snapshot(*node_ids: str, server_time_at: float = WALL_T0) -> Snapshot:
    """A snapshot of ``node_ids``, all online."""
    return Snapshot(server_time_at=server_time_at, nodes=[entry(node_id) for node_id in node_ids])


def update(*entries: NodeEntry, removed: tuple[str, ...] = (), server_time_at: float = WALL_T0) -> Update:
    """An update carrying ``entries`` and ``removed``."""
    return Update(server_time_at=server_time_at, nodes=list(entries), removed=list(removed))
