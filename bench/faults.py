"""The heavier fault scenarios of tests/faults, measured, printed as the README's Reliability table.

Runs real processes on loopback only (collector, agents, bench/fleet.py,
bench/fuzz.py) and kills all of them at the end. Each scenario is bounded in
time. Prints one markdown table: the fault, how it was injected, and what was
measured (samples lost, recovery time, collector memory).

Usage: .venv/bin/python bench/faults.py [--agents 50] [--flood 5000] [--fleet 10000] [--skip fuzz,...]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench import _trust_faults as trust
from bench._flood import HealthProbe, storm
from bench._procs import (
    REPO,
    ProcessGroup,
    agent_connections,
    gaps,
    health,
    kill_and_restart,
    last_seqs,
    node,
    protocol_errors,
    rss_bytes,
    wait_until,
)
from bench._proxy import FaultProxy
from bench._recorder import StateRecorder
from bench._stats import median

MIB = 2**20
Row = tuple[str, str, str]


async def collector_kill(group: ProcessGroup, agents: int) -> Row:
    """kill -9 the collector under ``agents`` real agents, restart on the same port after 3 s."""
    interval_s, down_s = 1.0, 3.0
    collector = await asyncio.to_thread(group.collector)
    ids = [f"k{i:03d}" for i in range(agents)]
    for n in ids:
        group.agent(collector.url, n, "--interval", str(interval_s))
    async with aiohttp.ClientSession() as session:

        async def running() -> bool:
            seqs = await last_seqs(session, collector.url)
            return all(seqs.get(n, 0) >= 3 for n in ids)

        await wait_until(running, 120, "all agents to push")
        restart = await kill_and_restart(group, session, collector, down_s=down_s, interval_s=interval_s)
        collector, held, slack, restarted = restart.collector, restart.held, restart.slack, restart.listening_mono
        back: dict[str, float] = {}
        while len(back) < agents and time.monotonic() - restarted < 60:
            for n, seq in (await last_seqs(session, collector.url)).items():
                if n not in back and seq > held[n] + down_s / interval_s:
                    back[n] = time.monotonic() - restarted
            await asyncio.sleep(0.1)
        await asyncio.sleep(2 * interval_s)
        lost = 0
        for n in ids:
            body = await node(session, collector.url, n)
            if body is None:
                continue
            seqs = body["history"]["seq"]
            lost += max(0, seqs[0] - 1 - held[n] - slack) + sum(b - a - 1 for a, b in gaps(seqs))
        rss = rss_bytes(collector.proc.pid)
    times = sorted(back.values())
    return (
        f"Collector killed ({agents} agents)",
        f"`kill -9` of the collector while {agents} `nodewatch agent` processes push every {interval_s:g} s; "
        f"restarted on the same port {down_s:g} s later",
        f"{len(back)}/{agents} agents back; reconnect after restart median {median(times):.1f} s, "
        f"max {times[-1]:.1f} s (backoff cap 30 s); samples lost: {lost}; collector RSS {rss / MIB:.0f} MiB",
    )


async def backlog_overflow(group: ProcessGroup) -> Row:
    """A 3-sample backlog through a 3 s outage."""
    collector = await asyncio.to_thread(group.collector)
    group.agent(collector.url, "ovf", "--interval", "0.2", "--backlog-samples", "3")
    async with aiohttp.ClientSession() as session:

        async def running() -> bool:
            return (await last_seqs(session, collector.url)).get("ovf", 0) >= 3

        await wait_until(running, 30, "the agent")
        restart = await kill_and_restart(group, session, collector, down_s=3.0, interval_s=0.2)
        collector, held = restart.collector, restart.held["ovf"]

        async def back() -> bool:
            body = await node(session, collector.url, "ovf")
            return body is not None and len(body["history"]["seq"]) >= 3

        await wait_until(back, 30, "the agent to come back")
        body: Any = await node(session, collector.url, "ovf")
    gap = body["history"]["seq"][0] - 1 - held
    return (
        "Agent backlog overflow",
        "agent with `--backlog-samples 3`, interval 0.2 s; collector killed for 3 s",
        f"gap of {gap} samples in the history; reported `dropped_samples` = {body['status']['dropped_samples']}",
    )


async def network_fault(group: ProcessGroup, name: str) -> Row:
    """One proxy fault against one agent; recovery time and samples lost."""
    interval_s = 0.2
    hb = {"stall": 0.5, "half-open (collector side)": 3.0, "half-open (agent side)": 0.5}.get(name, 0.5)
    collector = await asyncio.to_thread(group.collector)
    proxy = FaultProxy(collector.port)
    await proxy.start()
    agent = group.agent(proxy.url, "net", "--interval", str(interval_s), "--ws-heartbeat", str(hb))
    try:
        async with aiohttp.ClientSession() as session, StateRecorder(collector.url) as rec:

            async def seq() -> int:
                body = await node(session, collector.url, "net")
                return 0 if body is None else int(body["status"]["last_seq"])

            async def reach(target: int) -> bool:
                return await seq() >= target

            await wait_until(lambda: reach(5), 30, "the agent")
            fault_at = time.monotonic()
            if name == "stall":
                how = "proxy holds every byte both ways (open and new connections) for 3 s; agent pings every 0.5 s"
                proxy.stall()
                await asyncio.sleep(3.0)
                proxy.resume()
            elif name == "half-open (collector side)":
                how = "proxy resets the collector side, keeps the agent side open and silent; agent pings every 3 s"
                proxy.half_open("upstream")
            elif name == "half-open (agent side)":
                how = "proxy resets the agent side, keeps the collector side open and silent"
                proxy.half_open("client")
            elif name == "slow link":
                how = "proxy paces both directions to 6 KB/s for 5 s (agent needs ~3 KB/s)"
                proxy.bytes_per_s = 6000.0
                await asyncio.sleep(5.0)
                proxy.bytes_per_s = None
            else:
                how = "proxy forwards half of one agent frame, then TCP RST to both sides"
                proxy.reset_mid_frame()
            healed_at = time.monotonic()
            target = await seq() + 1

            async def flowing() -> bool:
                if name.startswith("half-open") or name == "reset mid-frame":
                    return agent_connections(agent.log_text()) >= 2 and await reach(target)
                return await reach(target)

            await wait_until(flowing, 30, "recovery")
            recovered_s = time.monotonic() - healed_at
            await asyncio.sleep(1.0)
            states = rec.states("net", fault_at)
            agent.terminate()
            body: Any = await node(session, collector.url, "net")
    finally:
        agent.kill()
        await proxy.close()
    lost = sum(b - a - 1 for a, b in gaps(body["history"]["seq"]))
    return (
        f"Network: {name}",
        how,
        f"collector states: {' → '.join(states) or 'online throughout'}; samples flowing again "
        f"{recovered_s:.1f} s after the fault ended; samples lost: {lost}; "
        f"agent connections: {agent_connections(agent.log_text())}",
    )


async def frozen_subscriber(group: ProcessGroup, nodes: int) -> Row:
    """SIGSTOP a JSON subscriber under a simulated fleet; collector send timeout 1 s."""
    collector = await asyncio.to_thread(group.collector, "--send-timeout", "1", launcher=True)
    group.fleet(collector.url, nodes, 0.1, 90)
    ws_url = collector.url.replace("http://", "ws://") + "/api/v1/subscribe?format=json"
    frozen = group.subscriber(ws_url)
    async with aiohttp.ClientSession() as session, StateRecorder(collector.url) as other:

        async def loaded() -> bool:
            body = await health(session, collector.url)
            return bool(body["nodes"]["online"] >= nodes * 0.9 and body["subscribers"] == 2)

        await wait_until(loaded, 60, "the fleet")
        await asyncio.sleep(2.0)
        rate_before = (await health(session, collector.url))["ingest_heartbeats_per_s"]
        rss_before = rss_bytes(collector.proc.pid)
        frozen.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        peak, rates = rss_before, []
        while (await health(session, collector.url))["subscribers"] == 2 and time.monotonic() - frozen_at < 60:
            peak = max(peak, rss_bytes(collector.proc.pid))
            rates.append((await health(session, collector.url))["ingest_heartbeats_per_s"])
            await asyncio.sleep(0.25)
        cut_s = time.monotonic() - frozen_at
        await asyncio.sleep(2.0)
        rss_after = rss_bytes(collector.proc.pid)
        times = [t for t in other.message_times if t >= frozen_at]
        max_gap = max((b - a for a, b in itertools.pairwise(times)), default=math.inf)
    frozen.signal(signal.SIGCONT)
    frozen.popen.wait(15)
    ending = frozen.log_text().strip().splitlines()[-1]
    return (
        "Frozen subscriber",
        f"`SIGSTOP` of a `?format=json` subscriber process while {nodes} simulated nodes push every 0.1 s; "
        "collector send timeout 1 s",
        f"cut off after {cut_s:.1f} s (it saw: `{ending[:40]}`); collector RSS {rss_before / MIB:.0f} → peak "
        f"{peak / MIB:.0f} → {rss_after / MIB:.0f} MiB; ingest {rate_before:.0f} → median "
        f"{median(rates):.0f} heartbeats/s; other subscriber's longest wait "
        f"{max_gap * 1000:.0f} ms",
    )


async def flood(group: ProcessGroup, count: int) -> Row:
    """``count`` connections at once, a tight reconnect loop and silent handshakes, with a health probe."""
    collector = await asyncio.to_thread(group.collector, "--hello-timeout", "1", launcher=True)
    probe = HealthProbe(collector.url)
    task = asyncio.create_task(probe.run())
    started = time.monotonic()
    opened = await storm(collector.port, count)
    took_s = time.monotonic() - started
    await asyncio.sleep(1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    rss = rss_bytes(collector.proc.pid)
    return (
        "Connection flood",
        f"{count:,} TCP connections opened at once and dropped (half FIN, half RST, a third mid-request)",
        f"{opened:,} opened in {took_s:.1f} s; /api/v1/health answered {probe.answered} times, failed "
        f"{len(probe.failures)}; collector alive: {collector.proc.alive()}; RSS {rss / MIB:.0f} MiB",
    )


async def fuzz(group: ProcessGroup, connections: int) -> Row:
    """bench/fuzz.py --url against a collector that also serves a real agent."""
    collector = await asyncio.to_thread(group.collector)
    agent = group.agent(collector.url, "victim", "--interval", "0.5")
    ws = collector.url.replace("http://", "ws://")
    proc = group.spawn(
        "fuzz",
        [
            sys.executable,
            str(REPO / "bench" / "fuzz.py"),
            "--frames",
            "100",
            "--url",
            ws,
            "--connections",
            str(connections),
            "--max-seconds",
            "240",
        ],
    )
    await asyncio.to_thread(proc.popen.wait, 300)
    out = proc.log_text()
    health_line = next((ln for ln in out.splitlines() if "/api/v1/health answered" in ln), "health: ?")
    async with aiohttp.ClientSession() as session:
        body: Any = await node(session, collector.url, "victim")
        errors = await protocol_errors(session, collector.url, "ingest", "schema")
    agent.terminate()
    return (
        "Fuzzing",
        f"`bench/fuzz.py --url`: {connections:,} connections of mutated frames on ingest and subscribe "
        "next to a real agent",
        f"{health_line.lstrip('- ')}; collector alive: {collector.proc.alive()}; ingest schema refusals "
        f"{errors:.0f}; good agent reconnects: {agent_connections(agent.log_text()) - 1}, gaps: "
        f"{len(gaps(body['history']['seq']))}",
    )


async def memory_limit(group: ProcessGroup, nodes: int, max_nodes: int) -> Row:
    """A fleet bigger than --max-nodes against a collector under RLIMIT_AS 256 MiB."""
    limit = 256 * MIB

    def limit_as() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    collector = await asyncio.to_thread(group.collector, "--max-nodes", str(max_nodes), preexec_fn=limit_as)
    group.fleet(collector.url, nodes, 10.0, 120)
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        peak = 0
        while time.monotonic() - started < 60:
            peak = max(peak, rss_bytes(collector.proc.pid))
            body = await health(session, collector.url)
            if body["nodes"]["total"] >= max_nodes and time.monotonic() - started > 20:
                break
            await asyncio.sleep(0.5)
        refused = await protocol_errors(session, collector.url, "ingest", "capacity_reached")
        body = await health(session, collector.url)
    memory_errors = collector.proc.log_text().count("MemoryError")
    return (
        "Memory limit and node cap",
        f"collector under `RLIMIT_AS` 256 MiB with `--max-nodes {max_nodes:,}`; {nodes:,} simulated nodes",
        f"{body['nodes']['total']:,} nodes held, {refused:,.0f} hellos refused with 4503; peak RSS "
        f"{peak / MIB:.0f} MiB; MemoryError: {memory_errors}; alive: {collector.proc.alive()}",
    )


async def run(args: argparse.Namespace) -> list[Row]:
    """Every scenario not skipped, each in its own process group."""
    scenarios: list[tuple[str, Callable[[ProcessGroup], Awaitable[Row]]]] = [
        ("kill", lambda g: collector_kill(g, args.agents)),
        ("overflow", backlog_overflow),
        *[
            ("network", lambda g, n=n: network_fault(g, n))
            for n in ("stall", "half-open (collector side)", "half-open (agent side)", "slow link", "reset mid-frame")
        ],
        ("subscriber", lambda g: frozen_subscriber(g, args.subscriber_nodes)),
        ("flood", lambda g: flood(g, args.flood)),
        ("fuzz", lambda g: fuzz(g, args.fuzz_connections)),
        ("memory", lambda g: memory_limit(g, args.fleet, args.max_nodes)),
        # Issue 13's trust rows: identity, time, idle sockets, budgets and hostile collectors.
        ("identity", trust.identity),
        ("time", trust.future_stamp),
        ("idle", lambda g: trust.idle_sockets(g, args.idle)),
        ("flooder", lambda g: trust.flood(g, args.flood_nodes, args.flood_window)),
        ("budgets", lambda g: trust.budgets(g, args.trust_nodes)),
        ("parked", lambda g: trust.parked(g, args.parkers)),
        ("hostile", lambda g: trust.hostile_collector(g, 5.0)),
    ]
    rows = []
    for key, scenario in scenarios:
        if key in args.skip:
            continue
        with tempfile.TemporaryDirectory(prefix="nodewatch-faults-") as tmp:
            group = ProcessGroup(Path(tmp))
            try:
                rows.append(await asyncio.wait_for(scenario(group), 400))
            except Exception as exc:  # noqa: BLE001 - a failed scenario is a row of the table, not the end of the run
                logs = " / ".join(f"{p.name} rc={p.popen.poll()}: {p.log_text()[-300:]!r}" for p in group.procs[:2])
                rows.append((key, "(scenario failed)", f"FAILED: {exc!r:.300} [{logs}]"))
            finally:
                group.close()
        print(f"done: {rows[-1][0]}", file=sys.stderr, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios and print the Reliability table."""
    parser = argparse.ArgumentParser(description="Measure nodewatch under faults; print a markdown table.")
    parser.add_argument("--agents", type=int, default=50, help="real agents for the kill scenario (default 50)")
    parser.add_argument("--flood", type=int, default=5000, help="connections in the flood (default 5000)")
    parser.add_argument("--fleet", type=int, default=10_000, help="simulated nodes vs the memory limit (10000)")
    parser.add_argument("--max-nodes", type=int, default=2000, help="collector cap in the memory scenario (2000)")
    parser.add_argument("--subscriber-nodes", type=int, default=200, help="fleet size for the frozen subscriber")
    parser.add_argument("--fuzz-connections", type=int, default=4000, help="bench/fuzz.py --connections (4000)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle sockets from one address (10000)")
    parser.add_argument("--flood-nodes", type=int, default=300, help="simulated nodes next to the flooder (300)")
    parser.add_argument("--flood-window", type=float, default=10.0, help="seconds without, then with, the flood")
    parser.add_argument("--trust-nodes", type=int, default=1000, help="maximal nodes for RSS per node (1000)")
    parser.add_argument("--parkers", type=int, default=1500, help="connections parking fragments (1500)")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: kill,overflow,network,subscriber,flood,fuzz,memory,"
        "identity,time,idle,flooder,budgets,parked,hostile",
    )
    args = parser.parse_args(argv)
    args.skip = set(filter(None, args.skip.split(",")))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = asyncio.run(run(args))
    print("| fault | injected by | outcome (measured) |")
    print("|---|---|---|")
    for fault, how, outcome in rows:
        print(f"| {fault} | {how} | {outcome} |")
    return 0 if all(not r[2].startswith("FAILED") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
