"""``nodewatch simulate``: run N simulated agents against a collector on loopback, from a few processes.

This is the load generator behind ``nodewatch up --simulate N`` and ``bench/``. Every run
is bounded in time (``--duration``, default one hour), stays on loopback, and says so on
start, together with the nodes it kills on purpose. The nodes themselves live in
``nodewatch.simnodes``. Not the agent: it samples nothing real.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import math
import multiprocessing
import random
import resource
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nodewatch.simnodes import (
    CLOSE_WAIT_S,
    DEFAULT_CONNECT_RATE_PER_S,
    MAX_ADDRESSES,
    NODES_PER_PROCESS,
    SIMULATED_ACK_EVERY,
    SUMMARY_PREFIX,
    TICK_S,
    AgentConnection,
    FleetConfig,
    FleetCounters,
    NodeProfile,
    SimNode,
    ingest_target,
    make_heartbeat,
    make_profiles,
    pack_heartbeat,
    sim_facts,
)
from shared.codec import encode
from shared.messages import Hello


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
    node.ledger.connected(node.seq + 1, node.seq)
    hello = Hello(
        node_id=node.profile.node_id,
        agent_instance_id=node.instance_id,
        interval_s=config.interval_s,
        sent_at=time.time(),
        ack_every=SIMULATED_ACK_EVERY,
        facts=sim_facts(node.profile.node_id),
        newest_seq=node.seq,  # as the reference agent declares it: no backlog, so no replay credit to pace
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
    nodes = [SimNode(p, target, config.token, random.Random(p.node_id)) for p in profiles]  # noqa: S311 - load, not crypto
    counters.ledgers.update((node.profile.node_id, node.ledger) for node in nodes)
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
    if config.ack_record is not None:  # per node, the seqs the collector promised to hold (AckLedger)
        promised = {node_id: ledger.promised for node_id, ledger in counters.ledgers.items()}
        last = dict(counters.last_seq)
        Path(config.ack_record, f"acks-{worker}.json").write_text(json.dumps({"promised": promised, "last_seq": last}))
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
    parser = argparse.ArgumentParser(
        prog="nodewatch simulate", description="Simulate N nodewatch agents against a collector on loopback."
    )
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
        "--ack-record", default=None, metavar="DIR", help="at the end, write each node's acked seqs to DIR/acks-N.json"
    )
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
        ack_record=args.ack_record,
    )


def describe_run(config: FleetConfig, profiles: Sequence[NodeProfile]) -> str:
    """The line printed on start: how many nodes, which die on purpose, and when the run stops."""
    dying = [profile for profile in profiles if profile.dies_after_s is not None]
    text = f"nodewatch simulate: {config.nodes:,} simulated nodes at {config.interval_s:g} s against {config.collector}"
    if dying:
        clean = sum(profile.dies_cleanly for profile in dying)
        text += (
            f"; {len(dying)} of them die on purpose within 2 minutes ({clean} close their connection, "
            f"{len(dying) - clean} go silent) so stale and offline nodes show"
        )
    minutes, seconds = divmod(round(config.duration_s), 60)
    stops = f"{minutes} min" + (f" {seconds} s" if seconds else "") if minutes else f"{seconds} s"
    return text + f"; stops after {stops} (--duration)."


def main(argv: Sequence[str] | None = None) -> int:
    """Start the worker processes, wait for them (or Ctrl-C / SIGTERM), then print one summary line."""
    config = parse_args(argv)
    raise_nofile_limit()
    profiles = make_profiles(config, random.Random(42))  # noqa: S311 - a repeatable fleet, not crypto
    print(describe_run(config, profiles), file=sys.stderr, flush=True)
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
