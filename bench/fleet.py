"""A simulated fleet: N agents that speak the real protocol to a real collector, from a few processes.

Each simulated agent has its own node id, sends a real hello and real
heartbeats over its own websocket, and has its own interval phase. Samples
are varied and plausible: most nodes idle along, a few run hot, a few die
(some close cleanly, some just go silent; ``--no-dying`` turns that off).
All traffic stays on loopback and every run is bounded in time
(``--duration``, default one hour).

Heartbeats are packed straight from a wire map (the same keys
``shared.codec.encode`` would write) rather than built as pydantic models:
the simulator shares 2 cores with the collector it measures, so every
microsecond it spends is stolen from the thing under test. The collector
still validates every frame with the real schema.

``sampled_at`` is stamped with ``time.time()`` just before the frame is
sent, so a subscriber on the same host can measure the end-to-end latency
of each sample (``bench/e2e.py``).

This is a load generator for ``bench/`` and for ``nodewatch up --simulate N``;
it is not the agent (see ``agent/``) and samples nothing real.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import heapq
import json
import math
import multiprocessing
import os
import random
import resource
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack

from shared.codec import encode
from shared.messages import Hello, NodeFacts

# 500 connects/s per process keeps the collector's accept queue (backlog 4096) short.
DEFAULT_CONNECT_RATE_PER_S = 500.0
MAX_ADDRESSES = 200  # 127.0.0.2 .. 127.0.0.201: ~28k ephemeral ports each, far beyond any run here
NODES_PER_PROCESS = 2500  # one event loop comfortably drives this many 1 Hz agents
SUMMARY_PREFIX = "fleet summary "
# What a real agent with the default one-hour backlog asks for (agent.runner.ack_every): acks every 5 s.
SIMULATED_ACK_EVERY = 1800
TICK_S = 0.005  # the ticker's resolution: heartbeats leave within 5 ms of their phase
CLOSE_WAIT_S = 3.0  # at the end, how long to wait for the collector to answer our close frames


@dataclass(frozen=True)
class FleetConfig:
    """What one fleet run does."""

    collector: str
    nodes: int
    interval_s: float
    duration_s: float
    processes: int
    prefix: str
    spread_addresses: bool
    token: str | None
    dying: bool = True
    connect_rate_per_s: float = DEFAULT_CONNECT_RATE_PER_S


@dataclass
class NodeProfile:
    """How one simulated node behaves: its load level and whether (and how) it dies."""

    node_id: str
    base_cpu_percent: float
    mem_percent: float
    dies_after_s: float | None
    dies_cleanly: bool
    phase_s: float


@dataclass
class FleetCounters:
    """What a fleet (or one worker of it) did; ``last_seq`` is the last seq each node sent."""

    connected: int = 0
    sent: int = 0
    connect_errors: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)

    def merge(self, other: FleetCounters) -> None:
        """Add another worker's counts to these."""
        self.connected += other.connected
        self.sent += other.sent
        self.connect_errors += other.connect_errors
        self.last_seq.update(other.last_seq)


def make_profiles(config: FleetConfig, rng: random.Random) -> list[NodeProfile]:
    """Give every node a deterministic personality: 5 % hot, 2 % dying (if allowed), the rest ordinary."""
    profiles = []
    for index in range(config.nodes):
        roll = rng.random()
        hot = roll < 0.05
        dying = config.dying and 0.05 <= roll < 0.07
        profiles.append(
            NodeProfile(
                node_id=f"{config.prefix}-{index:05d}",
                base_cpu_percent=rng.uniform(80, 97) if hot else rng.uniform(2, 40),
                mem_percent=rng.uniform(20, 90),
                dies_after_s=rng.uniform(20, 120) if dying else None,
                dies_cleanly=rng.random() < 0.5,
                phase_s=rng.uniform(0, config.interval_s),
            )
        )
    return profiles


def make_heartbeat(profile: NodeProfile, seq: int, rng: random.Random) -> dict[str, Any]:
    """A plausible sample as a wire map: CPU wanders around the node's base load, rates are bursty."""
    cpu = min(100.0, max(0.0, profile.base_cpu_percent + rng.gauss(0, 5)))
    mem = min(100.0, max(0.0, profile.mem_percent + rng.gauss(0, 0.5)))
    total = 64 * 2**30
    return {
        "type": "heartbeat",
        "seq": seq,
        "sampled_at": time.time(),
        "cpu_percent": round(cpu, 1),
        "cpu_per_core_percent": [round(min(100.0, max(0.0, cpu + rng.gauss(0, 8))), 1) for _ in range(2)],
        "load_avg": [round(cpu / 50, 2), round(cpu / 55, 2), round(cpu / 60, 2)],
        "mem_used_bytes": int(8 * 2**30 * mem / 100),
        "mem_available_bytes": int(8 * 2**30 * (100 - mem) / 100),
        "mem_percent": round(mem, 1),
        "disks": {"/": [total, int(total * 0.4)], "/var": [total, int(total * (0.5 + 0.4 * math.sin(seq / 500)))]},
        "disk_read_bytes_per_s": float(int(rng.expovariate(1 / 50_000))),
        "disk_write_bytes_per_s": float(int(rng.expovariate(1 / 200_000))),
        "net_rx_bytes_per_s": float(int(rng.expovariate(1 / 100_000))),
        "net_tx_bytes_per_s": float(int(rng.expovariate(1 / 80_000))),
        "process_count": 150 + seq % 7,
        "uptime_s": float(86_400 + seq),
    }


def pack_heartbeat(heartbeat: dict[str, Any]) -> bytes:
    """The binary frame for a heartbeat map, as ``shared.codec.encode`` would pack it."""
    frame: bytes = msgpack.packb(heartbeat, use_bin_type=True)
    return frame


def sim_facts(hostname: str) -> NodeFacts:
    """The facts every simulated node reports (the other benches' agents report them too)."""
    return NodeFacts(
        hostname=hostname,
        os="Linux",
        os_release="6.1.0-sim",
        platform="simulated",
        arch="x86_64",
        cpu_count_logical=2,
        memory_total_bytes=8 * 2**30,
        agent_version="fleet-sim",
        python_version=sys.version.split()[0],
    )


def ingest_target(collector: str) -> tuple[str, int]:
    """Host and port of a collector base URL (plain http only: the fleet is a loopback bench)."""
    rest = collector.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)


class AgentConnection(asyncio.Protocol):
    """One simulated agent's websocket, spoken directly over an asyncio transport.

    aiohttp's client costs ~100 us of CPU per heartbeat and ack (measured), and the
    fleet shares 2 cores with the collector it measures; this minimal RFC 6455 client
    costs a fraction of that. It sends masked binary frames with an all-zero masking
    key (the masking is then the identity; the key is meant to defeat proxy cache
    poisoning, which cannot happen on loopback), counts the collector's frames, answers
    pings, and answers a close frame. It checks the 101 status line and nothing else.
    """

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        host, port = self.node.target
        auth = f"Authorization: Bearer {self.node.token}\r\n" if self.node.token else ""
        transport.write(
            f"GET /api/v1/ingest HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        """Finish the handshake, then walk the frames: acks are counted, pings answered, a close ends it."""
        buffer = self._buffer + data
        if not self.upgraded.done():
            head, sep, buffer = buffer.partition(b"\r\n\r\n")
            if not sep:
                self._buffer = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                self._close_transport()
                return
            self.upgraded.set_result(None)
        while len(buffer) >= 2:  # the smallest frame header
            opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:  # RFC 6455 5.2: 16-bit length follows
                if len(buffer) < 4:
                    break
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:  # RFC 6455 5.2: 64-bit length follows
                if len(buffer) < 10:
                    break
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + length:
                break
            payload, buffer = buffer[offset : offset + length], buffer[offset + length :]
            if opcode == 0x2:  # binary: an ack
                self.node.acks += 1
            elif opcode == 0x9:  # ping
                self.send(payload, opcode=0xA)
            elif opcode == 0x8:  # close: answer it and hang up
                self.send(payload[:2], opcode=0x8)
                self._close_transport()
                break
        self._buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        """Resolve both futures so that nobody waits on a dead connection."""
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, payload: bytes, opcode: int = 0x2) -> None:
        """One masked frame (zero key, see the class docstring)."""
        if self.transport is None or self.transport.is_closing():
            return
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        self.transport.write(header + b"\0\0\0\0" + payload)

    def close(self, code: int = 1000) -> None:
        """Start a clean close: a close frame with ``code``."""
        self.send(code.to_bytes(2, "big"), opcode=0x8)

    def _close_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(eq=False)
class SimNode:
    """One simulated agent's run state: its connection, its seq, what it has sent."""

    profile: NodeProfile
    target: tuple[str, int]
    token: str | None
    rng: random.Random
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    conn: AgentConnection | None = None
    seq: int = 0
    acks: int = 0
    silent: bool = False


async def _connect(node: SimNode, config: FleetConfig, local_host: str | None, counters: FleetCounters) -> None:
    """Open the websocket and say hello; on failure count it and leave ``node.conn`` empty."""
    loop = asyncio.get_running_loop()
    host, port = node.target
    try:
        async with asyncio.timeout(15):
            _, conn = await loop.create_connection(
                lambda: AgentConnection(node), host, port, local_addr=(local_host, 0) if local_host else None
            )
            await conn.upgraded
    except (OSError, TimeoutError):
        counters.connect_errors += 1
        return
    hello = Hello(
        node_id=node.profile.node_id,
        agent_instance_id=node.instance_id,
        interval_s=config.interval_s,
        sent_at=time.time(),
        ack_every=SIMULATED_ACK_EVERY,
        facts=sim_facts(node.profile.node_id),
    )
    conn.send(encode(hello))
    node.conn = conn
    counters.connected += 1


async def _keep_connected(
    node: SimNode, config: FleetConfig, local_host: str | None, counters: FleetCounters, deadline: float
) -> None:
    """Connect, and reconnect after a random pause whenever the connection drops, until the deadline."""
    while time.monotonic() < deadline and not node.silent:
        await _connect(node, config, local_host, counters)
        if node.conn is not None:
            await node.conn.closed
            node.conn = None
        await asyncio.sleep(node.rng.uniform(0.5, 2.0))


async def run_worker(
    config: FleetConfig, profiles: Sequence[NodeProfile], worker: int, counters: FleetCounters | None = None
) -> FleetCounters:
    """Run a share of the fleet in this process (connects staggered); return its counters.

    One ticker drives every node of the process from a heap of due times, so the
    cost per heartbeat is one pack and one write, not a task wake-up and a timer.
    Pass ``counters`` to keep what was counted even if the run is cancelled.
    """
    counters = FleetCounters() if counters is None else counters
    started = time.monotonic()
    deadline = started + config.duration_s
    local_host = f"127.0.0.{2 + worker % MAX_ADDRESSES}" if config.spread_addresses else None
    target = ingest_target(config.collector)
    nodes = [SimNode(p, target, config.token, random.Random(p.node_id)) for p in profiles]
    stagger_s = 1.0 / config.connect_rate_per_s
    due: list[tuple[float, int]] = []
    tasks: list[asyncio.Task[None]] = []
    async with asyncio.TaskGroup() as group:
        try:
            for index, node in enumerate(nodes):
                tasks.append(group.create_task(_keep_connected(node, config, local_host, counters, deadline)))
                heapq.heappush(due, (time.monotonic() + node.profile.phase_s, index))
                await asyncio.sleep(stagger_s)
            while (now := time.monotonic()) < deadline:
                while due and due[0][0] <= now:
                    at, index = heapq.heappop(due)
                    _tick(nodes[index], now - started, counters)
                    heapq.heappush(due, (at + config.interval_s, index))
                await asyncio.sleep(min(TICK_S, max(0.0, deadline - now)))
        finally:
            await _close_all(nodes)
            for task in tasks:  # those still connecting or pausing before a reconnect
                task.cancel()
    return counters


def _tick(node: SimNode, age_s: float, counters: FleetCounters) -> None:
    """Send one node's heartbeat now, or let it die if its time has come."""
    conn = node.conn
    if conn is None or node.silent:
        return
    profile = node.profile
    if profile.dies_after_s is not None and age_s > profile.dies_after_s:
        node.silent = True  # both kinds stop sending; a clean one also says goodbye
        if profile.dies_cleanly:
            conn.close()
        return
    node.seq += 1
    conn.send(pack_heartbeat(make_heartbeat(profile, node.seq, node.rng)))
    counters.sent += 1
    counters.last_seq[profile.node_id] = node.seq


async def _close_all(nodes: Sequence[SimNode]) -> None:
    """Close every open connection cleanly (1000), waiting a bounded time for the collector's answers."""
    open_conns = [n.conn for n in nodes if n.conn is not None]
    for node in nodes:
        node.silent = True
    for conn in open_conns:
        conn.close()
    if open_conns:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await asyncio.gather(*(conn.closed for conn in open_conns))
    for conn in open_conns:
        if conn.transport is not None:
            conn.transport.close()


def _worker_main(
    config: FleetConfig, profiles: list[NodeProfile], worker: int, results: multiprocessing.SimpleQueue[str]
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the fleet stops
    counters = FleetCounters()
    runner = asyncio.Runner()
    with runner:
        task = runner.get_loop().create_task(run_worker(config, profiles, worker, counters))
        runner.get_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            runner.run(_wait(task))
    # Counts only: a per-node map could overflow the pipe before the parent reads it.
    results.put(json.dumps({"connected": counters.connected, "sent": counters.sent, "errors": counters.connect_errors}))


async def _wait(task: asyncio.Task[FleetCounters]) -> None:
    await task


def raise_nofile_limit() -> int:
    """Raise the open-files soft limit to the hard limit: every agent needs a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parse_args(argv: Sequence[str] | None) -> FleetConfig:
    """Read the fleet's settings from the command line."""
    parser = argparse.ArgumentParser(description="Simulate N nodewatch agents against a collector on loopback.")
    parser.add_argument("--collector", default="http://127.0.0.1:8765", help="collector base URL (loopback only)")
    parser.add_argument("--nodes", type=int, default=100, help="number of simulated agents (default 100)")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat interval in seconds (default 1)")
    parser.add_argument("--duration", type=float, default=3600.0, help="stop after this many seconds (default 3600)")
    parser.add_argument(
        "--processes", type=int, default=0, help=f"worker processes (default: 1 per {NODES_PER_PROCESS:,} nodes)"
    )
    parser.add_argument("--prefix", default="sim", help="node id prefix (default 'sim')")
    parser.add_argument("--spread-addresses", action="store_true", help="use 127.0.0.x source addresses")
    parser.add_argument("--token", default=None, help="agent token, if the collector wants one")
    parser.add_argument("--no-dying", action="store_true", help="no node dies (for loss measurements)")
    parser.add_argument(
        "--connect-rate",
        type=float,
        default=DEFAULT_CONNECT_RATE_PER_S,
        help=f"new connections per second per process (default {DEFAULT_CONNECT_RATE_PER_S:g})",
    )
    args = parser.parse_args(argv)
    host = args.collector.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if not (host.startswith("127.") or host in {"localhost", "[::1]"}):
        parser.error(f"--collector: expected a loopback address, got {host!r}")
    if not args.collector.startswith("http://") or not args.collector.rstrip("/").rsplit(":", 1)[-1].isdigit():
        parser.error(f"--collector: expected http://HOST:PORT (the fleet speaks plain ws), got {args.collector!r}")
    if args.nodes < 1:
        parser.error(f"--nodes: expected at least 1, got {args.nodes}")
    if not 0.05 <= args.interval <= 3600:
        parser.error(f"--interval: expected 0.05-3600 seconds, got {args.interval}")
    if not 0 < args.duration <= 86_400:
        parser.error(f"--duration: expected 0-86400 seconds, got {args.duration}")
    if args.processes < 0:
        parser.error(f"--processes: expected 0 (automatic) or more, got {args.processes}")
    if not args.connect_rate > 0:
        parser.error(f"--connect-rate: expected connections/s > 0, got {args.connect_rate}")
    processes = args.processes or max(1, min(8, math.ceil(args.nodes / NODES_PER_PROCESS)))
    return FleetConfig(
        collector=args.collector,
        nodes=args.nodes,
        interval_s=args.interval,
        duration_s=args.duration,
        processes=processes,
        prefix=args.prefix,
        spread_addresses=args.spread_addresses,
        token=args.token,
        dying=not args.no_dying,
        connect_rate_per_s=args.connect_rate,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Start the worker processes, wait for them (or Ctrl-C / SIGTERM), then print one summary line."""
    config = parse_args(argv)
    raise_nofile_limit()
    profiles = make_profiles(config, random.Random(42))
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.SimpleQueue[str] = context.SimpleQueue()
    workers = [
        context.Process(
            target=_worker_main, args=(config, profiles[index :: config.processes], index, results), daemon=True
        )
        for index in range(config.processes)
    ]
    for process in workers:
        process.start()
    signal.signal(signal.SIGTERM, _stop_once)
    signal.signal(signal.SIGINT, _stop_once)
    try:
        for process in workers:
            process.join()
    except KeyboardInterrupt:
        for process in workers:
            process.terminate()  # SIGTERM: each worker cancels its fleet and reports what it sent
        for process in workers:
            process.join(timeout=5)
    total = FleetCounters()
    while not results.empty():
        counts = json.loads(results.get())
        total.merge(FleetCounters(connected=counts["connected"], sent=counts["sent"], connect_errors=counts["errors"]))
    summary = {"connected": total.connected, "sent": total.sent, "connect_errors": total.connect_errors}
    print(SUMMARY_PREFIX + json.dumps(summary), flush=True)
    return 0


def _stop_once(_signum: int, _frame: object) -> None:
    """Turn the first SIGINT/SIGTERM into KeyboardInterrupt; ignore the rest (Ctrl-C plus a TERM arrive together)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
