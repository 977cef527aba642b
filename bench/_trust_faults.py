"""The trust rows of the README's Reliability table (issue 13), as ``bench/faults.py`` scenarios.

Each function takes a ``ProcessGroup`` and returns one row (fault, how, outcome):
idle sockets, one flooding connection, identity takeover, a future stamp, the
worst legal heartbeat's memory per node, parked fragments under a memory
limit, and a hostile collector. Real collector and agent processes on
loopback; the attacker runs in this process or in ``bench._trust_wire``.
Not here: the table itself (``bench/faults.py``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench._procs import REPO, ProcessGroup, Spawned, agent_connections, node, protocol_errors, rss_bytes, wait_until
from bench._stats import percentile
from bench._trust_wire import (
    HostileCollector,
    RawAgent,
    assert_legal,
    hello_for,
    maximal_heartbeat,
    small_heartbeat,
)
from shared.codec import encode

MIB = 2**20
Row = tuple[str, str, str]


def agent(group: ProcessGroup, url: str, node_id: str, *args: str, env: dict[str, str] | None = None) -> Spawned:
    """A real ``nodewatch agent`` with its node key in the group's own dir (never /var/lib)."""
    return group.agent(url, node_id, "--state-dir", str(group.workdir / f"state-{node_id}"), *args, env=env)


async def first_sample_s(session: aiohttp.ClientSession, base: str, node_id: str, started: float) -> float:
    """Seconds from ``started`` until ``node_id`` has a sample in the API."""

    async def seen() -> bool:
        body = await node(session, base, node_id)
        return body is not None and int(body["status"]["last_seq"]) >= 1

    await wait_until(seen, 60, f"{node_id}'s first sample")
    return time.monotonic() - started


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_sockets(group: ProcessGroup, count: int) -> Row:
    """``count`` idle sockets from 127.0.0.2; a real agent from 127.0.0.1 connects next to them."""
    collector = await asyncio.to_thread(group.collector)
    async with aiohttp.ClientSession() as session:
        calm = time.monotonic()
        agent(group, collector.url, "calm")
        calm_s = await first_sample_s(session, collector.url, "calm", calm)
        held: list[asyncio.StreamWriter] = []
        refused = 0

        async def one() -> None:
            nonlocal refused
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", collector.port, local_addr=("127.0.0.2", 0))
                try:
                    answer = await asyncio.wait_for(reader.read(64), timeout=0.5)
                    refused += answer.startswith(b"HTTP/1.1 429")
                    writer.close()
                except TimeoutError:
                    held.append(writer)

        for start in range(0, count, 500):
            await asyncio.gather(*(one() for _ in range(start, min(count, start + 500))))
        besieged = time.monotonic()
        agent(group, collector.url, "besieged")
        besieged_s = await first_sample_s(session, collector.url, "besieged", besieged)
        for writer in held:
            writer.close()
    return (
        "Idle sockets (no token)",
        f"{count:,} TCP connections from 127.0.0.2 that never send a byte, then a real agent from 127.0.0.1",
        f"{len(held)} held (the per-address cap), {refused:,} answered 429; agent start to first sample "
        f"{besieged_s:.2f} s under the attack, {calm_s:.2f} s without it",
    )


async def ack_rtts(base: str, seconds: float, interval_s: float = 0.05) -> list[float]:
    """An honest probe agent's heartbeat-to-ack times over ``seconds`` (ack_every 1: each is acked at once)."""
    rtts: list[float] = []
    async with aiohttp.ClientSession() as session:
        probe = await RawAgent.connect(session, base, hello_for(f"probe-{time.monotonic_ns()}", interval_s=interval_s))
        seq, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            seq += 1
            sent = time.monotonic()
            await probe.ws.send_bytes(encode(small_heartbeat(seq, time.time())))
            if not await probe.receive():
                raise AssertionError(f"the probe was closed {probe.close_code} {probe.close_reason}")
            rtts.append(time.monotonic() - sent)
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - sent)))
        await probe.ws.close()
    return rtts


async def flood(group: ProcessGroup, nodes: int, window_s: float) -> Row:
    """Honest ack latency with and without one flooding connection, next to a simulated fleet."""
    collector = await asyncio.to_thread(group.collector)
    group.fleet(collector.url, nodes, 1.0, 3 * window_s + 30)
    await asyncio.sleep(8.0)  # the fleet connects
    pid = collector.proc.popen.pid
    cpu0, t0 = cpu_s(pid), time.monotonic()
    calm = await ack_rtts(collector.url, window_s)
    cpu1, t1 = cpu_s(pid), time.monotonic()
    flooder = group.spawn("flood", [sys.executable, "-m", "bench._trust_wire", "flood", collector.url, str(window_s)])
    stormy = await ack_rtts(collector.url, window_s)
    cpu2, t2 = cpu_s(pid), time.monotonic()
    calm_cpu, stormy_cpu = (cpu1 - cpu0) / (t1 - t0) * 100, (cpu2 - cpu1) / (t2 - t1) * 100
    await asyncio.to_thread(flooder.popen.wait, 30)
    sent = int(flooder.log_text().split()[-1])
    async with aiohttp.ClientSession() as session:
        refused = await protocol_errors(session, collector.url, "ingest", "rate_exceeded")
    return (
        "One flooding connection",
        f"{nodes} simulated nodes at 1 Hz; an honest probe agent at 20 Hz for {window_s:g} s without, then "
        f"{window_s:g} s with one connection sending heartbeats as fast as TCP takes them (a fresh node id each "
        "time it is refused)",
        f"probe ack p50/p99 {percentile(calm, 0.5) * 1e3:.1f}/{percentile(calm, 0.99) * 1e3:.1f} ms without, "
        f"{percentile(stormy, 0.5) * 1e3:.1f}/{percentile(stormy, 0.99) * 1e3:.1f} ms with; collector CPU "
        f"{calm_cpu:.0f} → {stormy_cpu:.0f} % of a core; the flooder wrote {sent / window_s:,.0f} frames/s "
        f"and was closed 4430 {refused:.0f} times",
    )


async def identity(group: ProcessGroup) -> Row:
    """A real agent with a node key; an insider replays its instance id, without and with another key."""
    collector = await asyncio.to_thread(group.collector)
    agent_proc = agent(group, collector.url, "victim", "--interval", "0.5")
    async with aiohttp.ClientSession() as session:
        await first_sample_s(session, collector.url, "victim", time.monotonic())
        body = await node(session, collector.url, "victim")
        assert body is not None
        instance = body["status"]["agent_instance_id"]
        codes = []
        for credential in (None, os.urandom(32).hex()):
            extra = {"agent_instance_id": instance, "newest_seq": 2**63 - 1}
            if credential is not None:
                extra["node_credential"] = credential
            thief = await RawAgent.connect(session, collector.url, hello_for("victim", **extra))
            codes.append(f"{thief.close_code} `{thief.close_reason}`")
        before = int(body["status"]["last_seq"])
        await asyncio.sleep(2.0)
        after = await node(session, collector.url, "victim")
        assert after is not None
    return (
        "Identity takeover",
        "an insider with the fleet token replays a keyed agent's `agent_instance_id` (from the API) with "
        "`newest_seq` 2⁶³-1: without a node key, then with another key",
        f"refused {' and '.join(codes)}; the real agent kept its one connection "
        f"({agent_connections(agent_proc.log_text())}) and went on from seq {before} to {after['status']['last_seq']}",
    )


async def future_stamp(group: ProcessGroup) -> Row:
    """A heartbeat stamped an hour ahead, then the next instance's honest sample."""
    collector = await asyncio.to_thread(group.collector)
    async with aiohttp.ClientSession() as session:
        skewed = await RawAgent.connect(session, collector.url, hello_for("skewed", newest_seq=0))
        now = time.time()
        await skewed.ws.send_bytes(encode(small_heartbeat(1, now + 3600)))
        await skewed.receive()
        body = await node(session, collector.url, "skewed")
        assert body is not None
        stored_ahead = body["last_sample"]["sampled_at"] - time.time()
        skew = body["status"]["clock_skew_s"]
        await skewed.ws.close()
        honest = await RawAgent.connect(session, collector.url, hello_for("skewed", newest_seq=0))
        await honest.ws.send_bytes(encode(small_heartbeat(1, time.time())))
        await honest.receive()
        later = await node(session, collector.url, "skewed")
        assert later is not None
        replaced = abs(later["last_sample"]["sampled_at"] - time.time()) < 5
        await honest.ws.close()
    return (
        "Future-stamped sample",
        "a heartbeat with `sampled_at` one hour ahead, then a new instance of the node with its clock right",
        f"stored {stored_ahead:.0f} s ahead (the 300 s bound), clock skew shown {skew:.0f} s; the next "
        f"instance's sample replaced it as the latest: {replaced}",
    )


async def fill(base: str, nodes: int, *, maximal: bool) -> tuple[int, aiohttp.ClientSession, list[RawAgent]]:
    """``nodes`` raw agents, each a hello and three heartbeats, kept connected: the largest frame, and the agents."""
    agents: list[RawAgent] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    now = time.time()
    build = maximal_heartbeat if maximal else small_heartbeat
    frames = [assert_legal(encode(build(seq, now + seq - 3))) for seq in (1, 2, 3)]
    size = max(len(f) for f in frames)

    async def one(i: int) -> None:
        node_id = f"{'max' if maximal else 'small'}-{i:05d}"  # the two collectors share the group's data dir
        raw = await RawAgent.connect(session, base, hello_for(node_id, maximal=maximal, newest_seq=3))
        for frame in frames:
            await raw.ws.send_bytes(frame)
        while len(raw.acks) < 4 and await raw.receive():
            pass
        agents.append(raw)

    for start in range(0, nodes, 20):
        await asyncio.gather(*(one(i) for i in range(start, min(nodes, start + 20))))
    return size, session, agents


async def read_all(session: aiohttp.ClientSession, base: str) -> None:
    """One page of /api/v1/nodes and one /metrics scrape: what an operator's tools read of a full collector."""
    for path in ("/api/v1/nodes?limit=1000", "/metrics"):
        async with session.get(base + path) as r:
            await r.read()


async def budgets(group: ProcessGroup, nodes: int) -> Row:
    """RSS per node at ``nodes`` maximal legal nodes, next to as many small ones, each on a fresh collector."""
    per_node: dict[bool, float] = {}
    after_reads: dict[bool, float] = {}
    sizes: dict[bool, int] = {}
    for maximal in (False, True):
        collector = await asyncio.to_thread(group.collector)
        await asyncio.sleep(1.0)
        before = rss_bytes(collector.proc.pid)
        sizes[maximal], session, agents = await fill(collector.url, nodes, maximal=maximal)
        await asyncio.sleep(2.0)
        per_node[maximal] = (rss_bytes(collector.proc.pid) - before) / nodes
        await read_all(session, collector.url)
        await asyncio.sleep(1.0)
        after_reads[maximal] = (rss_bytes(collector.proc.pid) - before) / nodes
        for raw in agents:
            await raw.ws.close()
        await session.close()
        collector.proc.kill()
    return (
        "Largest legal heartbeats",
        f"{nodes:,} nodes each sending a maximal hello (32 labels, 256-character facts) and 3 heartbeats of "
        f"{sizes[True] / 1024:.1f} KiB (1,024 cores, 64 mounts, interfaces and sensors, 16 GPUs, every map full); "
        f"side by side with {nodes:,} nodes of {sizes[False]:.0f}-byte heartbeats",
        f"collector RSS {per_node[True] / 1024:.0f} KiB per maximal node ({after_reads[True] / 1024:.0f} KiB after "
        f"one /api/v1/nodes page and one /metrics scrape), {per_node[False] / 1024:.0f} KiB "
        f"({after_reads[False] / 1024:.0f}) per small one; a heartbeat at every schema limit at once (163 KiB) "
        "is refused 1009",
    )


async def parked(group: ProcessGroup, connections: int) -> Row:
    """``connections`` unfinished 64 KiB fragmented messages against a collector under RLIMIT_AS 256 MiB."""
    limit = 256 * MIB

    def limit_as() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    collector = await asyncio.to_thread(group.collector, preexec_fn=limit_as)
    async with aiohttp.ClientSession() as session:
        writers = []
        for start in range(0, connections, 20):
            opened = await asyncio.gather(*(park(collector.port) for _ in range(start, min(connections, start + 20))))
            writers += [w for w in opened if w is not None]
        peak = rss_bytes(collector.proc.pid)
        honest = await RawAgent.connect(session, collector.url, hello_for("honest"))
        acked = bool(honest.acks)
        shed = await protocol_errors(session, collector.url, "ingest", "parked_bytes_exceeded")
        for writer in writers:
            writer.close()
    errors = collector.proc.log_text().count("MemoryError")
    return (
        "Parked fragments",
        f"{connections:,} ingest websockets each sending 64 KiB of a fragmented message that never ends; "
        "collector under `RLIMIT_AS` 256 MiB",
        f"{shed:.0f} closed 1009 `parked_bytes_exceeded` (16 MiB budget); RSS {peak / MIB:.0f} MiB; MemoryError: "
        f"{errors}; an honest agent acked: {acked}; alive: {collector.proc.alive()}",
    )


def client_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """One masked client frame (RFC 6455 5.2) with a payload under 64 KiB."""
    mask = os.urandom(4)
    length = len(payload)
    head = bytes((0x80 * fin | opcode,))
    head += bytes((0x80 | length,)) if length < 126 else bytes((0x80 | 126,)) + length.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


FRAGMENT = 16 * 1024
PARK_FRAMES = client_frame(0x2, b"\0" * FRAGMENT, fin=False) + client_frame(0x0, b"\0" * FRAGMENT, fin=False) * 3


async def park(port: int) -> asyncio.StreamWriter | None:
    """One raw ingest websocket left holding an unfinished 64 KiB fragmented binary message; None if refused."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /api/v1/ingest HTTP/1.1\r\nHost: c\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        if not status.startswith(b"HTTP/1.1 101 "):
            writer.close()
            return None
        writer.write(PARK_FRAMES)
        await writer.drain()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    return writer


_RETRY = re.compile(r"retrying in ([0-9.]+) s")


def baseline_env(rev: str, into: Path) -> dict[str, str]:
    """The environment that runs the agent as it was at git ``rev`` (unpacked under ``into``): an A/B in one run."""
    tree = into / f"baseline-{rev}"
    tree.mkdir(parents=True, exist_ok=True)
    archive = ["git", "archive", rev, "agent", "shared", "nodewatch"]
    packed = subprocess.run(archive, cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=packed, check=True)
    return {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(tree)}  # not the checkout in the cwd: the tree at ``rev``


async def hostile_collector(group: ProcessGroup, window_s: float, baseline: str | None = None) -> Row:
    """A real agent against a collector that acks above its seq, floods text frames, or floods pings.

    With ``baseline`` (a git rev), each mode runs the agent at that rev first, then this one, side by side.
    """
    envs: list[tuple[str, dict[str, str] | None]] = [("", None)]
    if baseline is not None:
        envs.insert(0, (f"{baseline}: ", baseline_env(baseline, group.workdir)))
    parts: list[str] = []
    for mode in ("ack_above", "text", "ping"):
        for label, env in envs:
            server = HostileCollector(mode)
            await server.start()
            url, node_id = f"http://127.0.0.1:{server.port}", f"victim-{mode}-{len(parts)}"
            proc = agent(group, url, node_id, "--interval", "0.1", env=env)

            async def connected(server: HostileCollector = server) -> bool:
                return server.connections > 0

            await wait_until(connected, 30, "the agent's first connection")
            cpu0, log0, t0 = cpu_s(proc.popen.pid), proc.log_path.stat().st_size, time.monotonic()
            await asyncio.sleep(window_s)
            took = time.monotonic() - t0
            cpu = (cpu_s(proc.popen.pid) - cpu0) / took * 100
            log_rate = (proc.log_path.stat().st_size - log0) / took
            delays = [float(d) for d in _RETRY.findall(proc.log_text())]
            retry = f", next try in {min(delays):.0f}-{max(delays):.0f} s" if delays else ""
            parts.append(
                f"{label}{mode}: agent CPU {cpu:.1f} %, log {log_rate / 1024:.2f} KiB/s, "
                f"connections {server.connections}{retry}"
            )
            proc.kill()
            await server.stop()
    return (
        "Hostile collector",
        f"a real agent (interval 0.1 s, DEBUG log) against an ingest endpoint that acks seq 1,000,000, floods text "
        f"frames, or floods pings; measured over {window_s:g} s from its first connection, each",
        "; ".join(parts),
    )


def main(argv: list[str]) -> int:
    """``hostile [WINDOW_S] [BASELINE_REV]``: print the hostile collector row (an A/B with a baseline rev)."""
    if not argv or argv[0] != "hostile" or len(argv) > 3:
        print("usage: python -m bench._trust_faults hostile [WINDOW_S] [BASELINE_REV]", file=sys.stderr)
        return 2
    window_s = float(argv[1]) if len(argv) > 1 else 5.0
    with tempfile.TemporaryDirectory(prefix="nodewatch-hostile-") as tmp:
        group = ProcessGroup(Path(tmp))
        try:
            row = asyncio.run(hostile_collector(group, window_s, argv[2] if len(argv) > 2 else None))
        finally:
            group.close()
    print("| " + " | ".join(row) + " |")
    return 0


__all__ = ["REPO", "budgets", "flood", "future_stamp", "hostile_collector", "identity", "idle_sockets", "parked"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
