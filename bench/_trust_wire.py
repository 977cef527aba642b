"""What the trust scenarios of ``bench/faults.py`` send and serve: maximal messages, raw agents, a hostile collector.

- ``maximal_heartbeat`` / ``maximal_hello``: the largest legal messages (every map at its
  count limit, names as long as still fits the 64 KiB ingest frame), the worst a node can cost.
- ``RawAgent``: one ingest websocket spoken to by hand (hello, heartbeats, the close it gets).
- ``HostileCollector``: an ingest endpoint that lies about acks or floods text frames or pings.
- ``python -m bench._trust_wire flood URL SECONDS``: one flooding connection at a time, each a
  fresh node id sending heartbeats as fast as TCP takes them until refused; prints frames sent.

Not here: judging or printing results (``bench._trust_faults``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from shared.codec import COLLECTOR_LIMITS, INGEST_LIMITS, decode, encode
from shared.limits import MAX_CORES, MAX_DISKS, MAX_GPUS, MAX_LABELS, MAX_SHORT_TEXT, MAX_TOP_PROCESSES
from shared.messages import Ack, GpuReading, Heartbeat, Hello, NodeFacts, ProcessUsage

T = 2**40  # a large byte count: msgpack's 9-byte uint64, the widest
NAME_LEN = 75  # with every map full, longer names no longer fit the 64 KiB frame (75: 65,479 bytes)


def maximal_heartbeat(seq: int, sampled_at: float, name_len: int = NAME_LEN) -> Heartbeat:
    """A heartbeat with every list and map at its limit and float64 values everywhere."""

    def names(prefix: str) -> list[str]:
        return [(f"{prefix}{i:02d}-" + "x" * name_len)[:name_len] for i in range(MAX_DISKS)]

    mounts, nics, sensors = names("/m"), names("e"), names("t")
    proc = ProcessUsage(pid=2**30, name="p" * min(name_len, MAX_SHORT_TEXT), cpu_percent=99.5, rss_bytes=T)
    gpu = GpuReading(index=0, name="G" * name_len, utilization_percent=50.5, memory_used_bytes=T,
                     memory_total_bytes=T, temperature_celsius=60.5, power_watts=300.5)  # fmt: skip
    return Heartbeat(
        seq=seq, sampled_at=sampled_at, cpu_percent=12.345,
        cpu_per_core_percent=[12.345 + i * 0.001 for i in range(MAX_CORES)], load_avg=[1.1, 2.2, 3.3],
        mem_used_bytes=T, mem_available_bytes=T, mem_percent=50.5, swap_total_bytes=T, swap_used_bytes=T,
        swap_percent=50.5, disks={k: [T, T, T] for k in mounts}, disk_inodes={k: [T, T] for k in mounts},
        disks_read_only=mounts, cpu_mode_percent={f"mode{i}": 1.5 for i in range(16)},
        pressure_avg10_percent={f"p{i}": [1.5, 2.5] for i in range(8)},
        disk_devices={k: [1.5e9, 1.5e9, 1.5e4, 1.5e4, 50.5, 1.5] for k in mounts},
        net_interface_errors={k: [T] * 4 for k in nics}, net_interfaces_down=nics,
        net_interfaces={k: [1.5e9, 1.5e9] for k in nics}, temperatures=dict.fromkeys(sensors, 55.5),
        gpus=[gpu.model_copy(update={"index": i}) for i in range(MAX_GPUS)],
        top_cpu=[proc] * MAX_TOP_PROCESSES, top_memory=[proc] * MAX_TOP_PROCESSES,
        tcp_established=T, tcp_time_wait=T, fd_allocated=T, fd_max=T, disk_read_bytes_per_s=1.5e9,
        disk_write_bytes_per_s=1.5e9, net_rx_bytes_per_s=1.5e9, net_tx_bytes_per_s=1.5e9, process_count=T,
        uptime_s=1.5e7, cgroup_cpu_limit_cores=64.5, cgroup_memory_limit_bytes=T, sample_errors=5, late_ticks=5,
    )  # fmt: skip


def small_heartbeat(seq: int, sampled_at: float) -> Heartbeat:
    """A heartbeat of an ordinary small node (~400 bytes), the baseline next to the maximal one."""
    return Heartbeat(seq=seq, sampled_at=sampled_at, cpu_percent=12.5, load_avg=[0.5, 0.4, 0.3],
                     mem_used_bytes=2**33, mem_available_bytes=2**33, mem_percent=50.0,
                     disks={"/": [2**40, 2**39, 2**39]}, net_rx_bytes_per_s=1e5, net_tx_bytes_per_s=1e5)  # fmt: skip


def hello_for(node_id: str, *, maximal: bool = False, interval_s: float = 1.0, **extra: object) -> Hello:
    """A hello for ``node_id``; ``maximal`` fills every label and text field to its limit."""
    text = "h" * MAX_SHORT_TEXT if maximal else "bench"
    labels = {f"k{i:02d}": "v" * 256 for i in range(MAX_LABELS)} if maximal else None
    facts = NodeFacts(hostname=text, os=text, os_release=text, platform=text, arch=text, memory_total_bytes=T,
                      agent_version=text, python_version=text, labels=labels)  # fmt: skip
    fields: dict[str, object] = {"node_id": node_id, "agent_instance_id": os.urandom(8).hex(), "interval_s": interval_s,
                                 "sent_at": time.time(), "facts": facts, **extra}  # fmt: skip
    return Hello.model_validate(fields)


def assert_legal(frame: bytes) -> bytes:
    """``frame`` itself, once checked to fit the ingest frame limit (a bench that lies proves nothing)."""
    if len(frame) > INGEST_LIMITS.max_frame_bytes:
        raise AssertionError(f"expected at most {INGEST_LIMITS.max_frame_bytes} bytes, got {len(frame)}")
    return frame


@dataclass
class RawAgent:
    """One ingest websocket spoken to by hand; ``close_code`` is set once the collector closes it."""

    ws: aiohttp.ClientWebSocketResponse
    close_code: int | None = None
    close_reason: str = ""
    acks: list[int] = field(default_factory=list)

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, base: str, hello: Hello) -> RawAgent:
        """Upgrade and send ``hello``; the first answer (an ack, or a close) is read."""
        ws = await session.ws_connect(base + "/api/v1/ingest", heartbeat=None, max_msg_size=0)
        agent = cls(ws)
        await ws.send_bytes(encode(hello))
        await agent.receive()
        return agent

    async def receive(self, timeout_s: float = 10.0) -> bool:
        """Read one ack (True) or the close (False, recorded); Error frames before the close are skipped."""
        while True:
            msg = await self.ws.receive(timeout=timeout_s)
            if msg.type is aiohttp.WSMsgType.BINARY:
                message = decode(msg.data, COLLECTOR_LIMITS)
                if isinstance(message, Ack):
                    self.acks.append(message.seq)
                    return True
                continue
            self.close_code = self.ws.close_code if msg.type is not aiohttp.WSMsgType.CLOSE else int(msg.data)
            self.close_reason = str(msg.extra or "")
            return False


class HostileCollector:
    """An ingest endpoint on 127.0.0.1 that acks the hello, then misbehaves as ``mode`` says.

    ``ack_above``: acks seq 1,000,000 after the first heartbeat; ``text``: text frames as fast as
    the socket takes them; ``ping``: pings as fast as the socket takes them.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get("/api/v1/ingest", self._ingest)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        self.connections += 1
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.CancelledError):
            await ws.receive()  # the hello
            await ws.send_bytes(encode(Ack(seq=0)))
            if self.mode == "ack_above":
                await ws.receive()
                await ws.send_bytes(encode(Ack(seq=1_000_000)))
                async for _ in ws:
                    pass
            else:
                while not ws.closed:
                    if self.mode == "text":
                        await ws.send_str("spam\nWARNING agent.pusher: forged")
                    else:
                        await ws.ping(b"x")
                        await asyncio.sleep(0)  # aiohttp does not wait for a drain after a ping: let the loop run
        return ws


async def flood(base: str, seconds: float) -> int:
    """One flooding connection at a time for ``seconds``: each a fresh node id, heartbeats until refused.

    The seqs cycle below the seq guard's slack (duplicates count against the frame budget too), so
    the frame budget, not the seq guard, is what refuses each connection. Returns the frames written.
    """
    sent, rounds = 0, 0
    deadline = time.monotonic() + seconds
    frames = [encode(small_heartbeat(seq, time.time())) for seq in range(1, 151)]
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            rounds += 1
            with contextlib.suppress(aiohttp.ClientError, OSError, ConnectionError, TimeoutError):
                # newest_seq 0: no backlog to replay, so past the live burst (30 s of frames) it is refused 4430.
                hello = hello_for(f"flood-{rounds}", interval_s=0.05, newest_seq=0)
                agent = await RawAgent.connect(session, base, hello)
                reader = asyncio.create_task(drain(agent))
                while not reader.done() and time.monotonic() < deadline:
                    await agent.ws.send_bytes(frames[sent % len(frames)])
                    sent += 1
                    if sent % 100 == 0:
                        await asyncio.sleep(0)  # let the reader see the close
                reader.cancel()
                await agent.ws.close()
    return sent


async def drain(agent: RawAgent) -> None:
    """Read acks until the collector closes ``agent``."""
    while await agent.receive(timeout_s=60):
        pass


def main(argv: list[str]) -> int:
    """``flood URL SECONDS``: print the frames sent."""
    if len(argv) != 3 or argv[0] != "flood":
        print("usage: python -m bench._trust_wire flood URL SECONDS", file=sys.stderr)
        return 2
    print(f"sent {asyncio.run(flood(argv[1], float(argv[2])))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
