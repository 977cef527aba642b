"""The simulated fleet's nodes: profiles, heartbeats packed from wire maps, and one agent connection each.

Each simulated agent has its own node id, sends a real hello and real heartbeats over
its own websocket, and has its own interval phase. Samples are varied and plausible:
most nodes idle along, a few run hot, a few die (some close cleanly, some just go
silent; ``--no-dying`` turns that off).

Heartbeats are packed straight from a wire map (the same keys ``shared.codec.encode``
would write) rather than built as pydantic models: the simulator shares the machine
with the collector it feeds, so every microsecond it spends is stolen from the thing
under test. The collector still validates every frame with the real schema.

``sampled_at`` is stamped with ``time.time()`` just before the frame is sent, so a
subscriber on the same host can measure the end-to-end latency of each sample.

Moved here from ``bench/fleet.py`` so that ``nodewatch up --simulate N`` works from an
installed wheel (which ships no ``bench/``); the runner and CLI are ``nodewatch.simulate``.
It is not the agent (see ``agent/``) and samples nothing real.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgpack

from shared.messages import NodeFacts

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
    ack_record: str | None = None  # a directory: each worker writes its nodes' AckLedger there at the end


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
class AckLedger:
    """The seqs of one node the collector said it holds: what a bench may call lost if the store lacks them.

    The simulator keeps no backlog: a seq it sent on a connection that ended before the seq was acked
    is never sent again (a real agent replays it after the next hello's ack, docs/protocol.md 4.1).
    So a seq counts as promised only if an ack on its own connection covered it, or the ack of the
    next hello (which says what the collector holds of the instance). Later acks pass over it as the
    protocol allows: "every sample up to N that it will ever get". ``promised`` holds merged
    ``[lo, hi]`` runs, in order.
    """

    promised: list[list[int]] = field(default_factory=list)
    first: int = 1  # the first seq of the current connection
    prev: tuple[int, int] | None = None  # the previous connection's seqs, until the next hello's ack
    hello_acked: bool = False

    def connected(self, next_seq: int, last_sent: int) -> None:
        """A new connection: its first seq will be ``next_seq``; the one before it sent up to ``last_sent``."""
        # A connection whose hello was never acked (refused, or cut first) leaves its range to the next.
        first = self.prev[0] if self.prev is not None and not self.hello_acked else self.first
        self.prev = (first, last_sent) if last_sent >= first else None
        self.first, self.hello_acked = next_seq, False

    def acked(self, seq: int, last_sent: int) -> None:
        """An ack of ``seq`` arrived on the current connection, which has sent up to ``last_sent``."""
        if not self.hello_acked:
            self.hello_acked = True
            if self.prev is not None:
                self._add(self.prev[0], min(self.prev[1], seq))
                self.prev = None
        self._add(self.first, min(seq, last_sent))

    def _add(self, lo: int, hi: int) -> None:
        if hi < lo:
            return
        runs = self.promised
        if runs and lo <= runs[-1][1] + 1 and lo >= runs[-1][0]:
            runs[-1][1] = max(runs[-1][1], hi)
        else:
            runs.append([lo, hi])


@dataclass
class FleetCounters:
    """What a fleet (or one worker of it) did; ``last_seq`` is the last seq each node sent."""

    connected: int = 0
    sent: int = 0
    connect_errors: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)
    ledgers: dict[str, AckLedger] = field(default_factory=dict)

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
            if opcode == 0x2:  # binary: an ack (or an error just before a close)
                self._ack(payload)
            elif opcode == 0x9:  # ping
                self.send(payload, opcode=0xA)
            elif opcode == 0x8:  # close: answer it and hang up
                self.send(payload[:2], opcode=0x8)
                self._close_transport()
                break
        self._buffer = buffer

    def _ack(self, payload: bytes) -> None:
        node = self.node
        try:
            message = msgpack.unpackb(payload, raw=False)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "ack" and isinstance(message.get("seq"), int):
            node.acks += 1
            node.ledger.acked(message["seq"], node.seq)

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
    ledger: AckLedger = field(default_factory=AckLedger)
