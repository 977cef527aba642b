"""Builders of valid wire messages for viewer tests; plain functions, no randomness."""

from __future__ import annotations

from shared.messages import Heartbeat, History, NodeEntry, NodeFacts, NodeState, NodeStatus, Snapshot, Update

BASE_AT = 1_800_000_000.0  # a fixed wall-clock instant, far from the epoch


def facts(hostname: str = "host") -> NodeFacts:
    """Facts of a small Linux box."""
    return NodeFacts(
        hostname=hostname,
        os="Linux",
        os_release="6.1.0",
        platform="Debian 12",
        arch="x86_64",
        cpu_count_logical=4,
        cpu_count_physical=2,
        memory_total_bytes=8 * 1024**3,
        boot_time_at=BASE_AT - 86_400,
        agent_version="0.1.0",
        python_version="3.11.7",
    )


def status(
    node_id: str, state: NodeState = "online", last_seen_at: float = BASE_AT, seq: int = 1, reason: str | None = None
) -> NodeStatus:
    """A status as the collector would report it."""
    return NodeStatus(
        node_id=node_id,
        state=state,
        state_since_at=BASE_AT - 60,
        reason=reason,
        last_seen_at=last_seen_at,
        interval_s=1.0,
        agent_instance_id=f"{node_id}-instance",
        connected=state != "offline",
        last_seq=seq,
    )


def heartbeat(seq: int = 1, cpu: float = 12.5, sampled_at: float = BASE_AT, mem: float = 40.0) -> Heartbeat:
    """A heartbeat with the fields the table shows."""
    return Heartbeat(
        seq=seq,
        sampled_at=sampled_at,
        cpu_percent=cpu,
        load_avg=[0.5, 0.4, 0.3],
        mem_percent=mem,
        disks={"/": [100 * 1024**3, 42 * 1024**3], "/data": [10 * 1024**3, 9 * 1024**3]},
        net_rx_bytes_per_s=1536.0,
        net_tx_bytes_per_s=2.5 * 1024**2,
        uptime_s=3 * 3600 + 5 * 60,
    )


def history(points: int = 5, end_at: float = BASE_AT) -> History:
    """``points`` samples one second apart ending at ``end_at``."""
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
    """A node entry; ``full`` adds facts and history as a snapshot carries them."""
    return NodeEntry(
        status=status(node_id, state, seq=seq),
        facts=facts(node_id) if full else None,
        last_sample=heartbeat(seq, cpu),
        history=history() if full else None,
    )


def snapshot(*node_ids: str, server_time_at: float = BASE_AT) -> Snapshot:
    """A snapshot of ``node_ids``, all online."""
    return Snapshot(server_time_at=server_time_at, nodes=[entry(node_id) for node_id in node_ids])


def update(*entries: NodeEntry, removed: tuple[str, ...] = (), server_time_at: float = BASE_AT) -> Update:
    """An update carrying ``entries`` and ``removed``."""
    return Update(server_time_at=server_time_at, nodes=list(entries), removed=list(removed))
