"""Benchmark: the whole pipeline at fleet scale, agent -> collector -> subscriber, on one host.

For each N in ``--nodes`` it starts a fresh ``nodewatch collector`` subprocess
on 127.0.0.1, one subscriber (this process), a ``/api/v1/health`` prober (a
separate process, so its timing is not disturbed by the subscriber's
decoding) and ``bench/fleet.py`` with N simulated agents at ``--interval``.
It waits for the connect storm to finish, lets the fleet settle, then
measures a steady window of ``--steady-s`` seconds:

- ingest: heartbeats/s the collector counted during the window;
- latency: subscriber receive time minus the sample's ``sampled_at``, which
  the simulator stamps with ``time.time()`` just before sending (wall time
  is one clock for every process on one host);
- collector CPU (% of one core, from /proc/PID/stat of the collector and its children: every thread and the store's
  writer included), also as microseconds per heartbeat, and RSS per 1,000 nodes
  (RSS growth over the idle collector, from /proc/PID/status);
- /api/v1/health latency, and the collector's own event-loop lag;
- bytes per heartbeat, msgpack against compact JSON of the same samples;
- loss: the fleet's sent count against the collector's ``heartbeats_received``,
  and the sum of every node's ``missing_samples``.

``--store both`` (the default) runs each size twice, side by side in one run: with the
collector's durable store off (``--ephemeral``) and on (``--data-dir`` in a fresh temporary
dir, acks gated by commits, issue 12); ``off`` or ``on`` runs one mode.

Prints a markdown table and writes it as JSON to bench/results/e2e.json.

Run: .venv/bin/python bench/e2e.py --nodes 1000,5000,7500,10000,20000 --steady-s 30 [--settle-s 10] [--store both]

Not a test: it measures. Loopback only; every phase has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import msgpack

from bench._procs import store_flags
from bench._stats import percentile
from nodewatch.simnodes import (
    DEFAULT_CONNECT_RATE_PER_S,
    NODES_PER_PROCESS,
    SUMMARY_PREFIX,
    FleetConfig,
    make_heartbeat,
    make_profiles,
    pack_heartbeat,
)
from nodewatch.simulate import raise_nofile_limit

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "e2e.json"
HEALTH_PROBE_INTERVAL_S = 0.02
PROBER_WARMUP_S = 3.0  # the health prober's process start-up happens before the steady window
SETTLE_S = 10.0  # after the storm: every phase comes round, and the 10 s rate and lag windows forget the storm
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
SPREAD_ABOVE_NODES = 5000  # use 127.0.0.x source addresses above this many nodes


@dataclass
class RunResult:
    """One row of the table."""

    nodes: int
    store: str  # "off" (--ephemeral) or "on" (--data-dir)
    connected: int
    storm_s: float
    storm_e2e_p99_ms: float
    ingest_per_s: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    e2e_max_ms: float
    samples_measured: int
    cpu_percent: float
    cpu_us_per_heartbeat: float
    fleet_cpu_percent: float
    rss_mib: float
    rss_kib_per_node: float
    health_p50_ms: float
    health_p99_ms: float
    health_max_ms: float
    loop_lag_max_ms: float
    sent: int
    received: int
    missing_samples: int
    connect_errors: int
    note: str


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children (the fleet's workers, the collector's store writer)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # the fleet already ended
        return 0.0
    total = 0.0
    for each in [pid, *map(int, children)]:
        with contextlib.suppress(OSError):
            total += cpu_seconds(each)
    return total


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


def bytes_per_heartbeat(count: int = 200) -> tuple[float, float]:
    """Mean frame size of the fleet's heartbeats: msgpack and compact JSON of the same samples."""
    config = FleetConfig("http://127.0.0.1:1", count, 1.0, 1.0, 1, "sim", False, None)
    rng = random.Random(1)
    packed, text = [], []
    for seq, profile in enumerate(make_profiles(config, rng), start=1):
        heartbeat = make_heartbeat(profile, seq, rng)
        packed.append(len(pack_heartbeat(heartbeat)))
        text.append(len(json.dumps(heartbeat, separators=(",", ":")).encode()))
    return statistics.mean(packed), statistics.mean(text)


# ---- health prober (its own process) --------------------------------------------------------


def _probe_main(url: str, start_at: float, duration_s: float, out: multiprocessing.SimpleQueue[str]) -> None:
    latencies = asyncio.run(_probe(url, start_at, duration_s))
    out.put(json.dumps(latencies))


async def _probe(url: str, start_at: float, duration_s: float) -> list[float]:
    """Probe from monotonic ``start_at`` (after this process's own start-up) for ``duration_s``."""
    latencies: list[float] = []
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    stop_at = time.monotonic() + duration_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(HEALTH_PROBE_INTERVAL_S)
    return latencies


# ---- subscriber ---------------------------------------------------------------------------


class Subscriber:
    """Follows /api/v1/subscribe; records each new sample's latency in ms under the current ``phase``."""

    def __init__(self) -> None:
        self.phase = "before"
        self.latencies_ms: dict[str, list[float]] = {"before": [], "storm": [], "steady": [], "after": []}
        self.snapshot_nodes = -1
        self.updates = 0

    async def run(self, url: str) -> None:
        """Receive until the collector closes; decode with msgpack only, to stay cheap."""
        async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0, compress=0) as ws:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    break
                received_at = time.time()
                message = msgpack.unpackb(msg.data)
                kind = message.get("type")
                if kind == "snapshot":
                    self.snapshot_nodes = len(message["nodes"])
                elif kind == "update":
                    self.updates += 1
                    if self.phase in {"storm", "steady"}:
                        self.latencies_ms[self.phase].extend(
                            (received_at - entry["last_sample"]["sampled_at"]) * 1000
                            for entry in message["nodes"]
                            if "last_sample" in entry
                        )


# ---- one run -------------------------------------------------------------------------------


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        return await resp.json()


async def _start_collector(
    max_nodes: int, wrapper: Path | None, data_dir: Path | None
) -> tuple[asyncio.subprocess.Process, str]:
    command = (
        [sys.executable, str(wrapper)] if wrapper is not None else [sys.executable, "-m", "nodewatch", "collector"]
    )
    collector = await asyncio.create_subprocess_exec(
        *command, "--bind", "127.0.0.1:0", "--log-level", "WARNING", "--max-nodes", str(max_nodes),
        *store_flags(data_dir), stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert collector.stdout is not None
    async with asyncio.timeout(30):
        line = (await collector.stdout.readline()).decode()
    return collector, line.split()[4]


async def _stop(proc: asyncio.subprocess.Process | None, timeout_s: float = 20.0) -> None:
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout_s):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)  # the fleet leads its own group: its workers go too
            else:
                proc.kill()
        await proc.wait()


@dataclass
class Steady:
    """What the steady window measured."""

    ingest_per_s: float
    cpu_percent: float
    cpu_us_per_heartbeat: float
    rss_loaded: int
    health_ms: list[float]
    lag_max_ms: float
    fleet_cpu_percent: float


async def _connect_storm(session: aiohttp.ClientSession, health_url: str, nodes: int, budget_s: float) -> int:
    """Wait until every agent is connected (or the budget runs out); return how many are."""
    started = time.monotonic()
    connected = 0
    while time.monotonic() - started < budget_s:
        await asyncio.sleep(0.5)
        connected = (await _get_json(session, health_url))["agents_connected"]
        if connected >= nodes:
            break
    return int(connected)


async def _steady(  # noqa: PLR0917 - one call site, every argument named
    session: aiohttp.ClientSession, health_url: str, pid: int, fleet_pid: int, sub: Subscriber, steady_s: float
) -> Steady:
    """Measure the steady window: ingest, CPU, RSS, health latency (from another process), loop lag."""
    context = multiprocessing.get_context("spawn")
    probe_out: multiprocessing.SimpleQueue[str] = context.SimpleQueue()
    # Spawning the prober costs a Python start-up (~0.5 s of CPU on this 2-core machine): do it
    # before the window, or the window's first second measures the spawn, not the collector.
    start_at = time.monotonic() + PROBER_WARMUP_S
    prober = context.Process(target=_probe_main, args=(health_url, start_at, steady_s, probe_out), daemon=True)
    prober.start()
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    before = await _get_json(session, health_url)
    cpu_before, fleet_before, t_before = tree_cpu_seconds(pid), tree_cpu_seconds(fleet_pid), time.monotonic()
    sub.phase = "steady"
    lag_max_ms = 0.0
    while time.monotonic() - t_before < steady_s:
        await asyncio.sleep(min(2.0, max(0.0, steady_s - (time.monotonic() - t_before))))
        lag_max_ms = max(lag_max_ms, float((await _get_json(session, health_url))["event_loop_lag_max_ms"]))
    sub.phase = "after"
    cpu_after, fleet_after, t_after = tree_cpu_seconds(pid), tree_cpu_seconds(fleet_pid), time.monotonic()
    after = await _get_json(session, health_url)
    rss_loaded = rss_bytes(pid)
    health_ms: list[float] = json.loads(await asyncio.to_thread(probe_out.get))
    prober.join(timeout=5)
    elapsed_s = t_after - t_before
    heartbeats = after["heartbeats_received"] - before["heartbeats_received"]
    return Steady(
        ingest_per_s=heartbeats / elapsed_s,
        cpu_percent=100 * (cpu_after - cpu_before) / elapsed_s,
        cpu_us_per_heartbeat=1e6 * (cpu_after - cpu_before) / heartbeats if heartbeats else float("nan"),
        rss_loaded=rss_loaded,
        health_ms=health_ms,
        lag_max_ms=lag_max_ms,
        fleet_cpu_percent=100 * (fleet_after - fleet_before) / elapsed_s,
    )


async def _fleet_summary(fleet: asyncio.subprocess.Process, timeout_s: float) -> dict[str, int]:
    """Wait for the fleet to end by itself (clean closes) and return its summary counts."""
    assert fleet.stdout is not None
    async with asyncio.timeout(timeout_s):
        output = (await fleet.stdout.read()).decode()
        await fleet.wait()
    for line in output.splitlines():
        if line.startswith(SUMMARY_PREFIX):
            summary: dict[str, int] = json.loads(line[len(SUMMARY_PREFIX) :])
            return summary
    return {"sent": -1, "connect_errors": -1}


async def _py_spy(pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--rate", "200", "--format", "raw", "--nonblocking", "-o", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def run_one(  # noqa: PLR0917 - one call site
    nodes: int,
    interval_s: float,
    steady_s: float,
    settle_s: float,
    profile_dir: Path | None,
    wrapper: Path | None,
    data_dir: Path | None,
) -> RunResult:
    """Measure one fleet size against a fresh collector (its store in ``data_dir``, or none)."""
    collector, base = await _start_collector(nodes + 100, wrapper, data_dir)
    fleet: asyncio.subprocess.Process | None = None
    spy: asyncio.subprocess.Process | None = None
    watcher: asyncio.Task[None] | None = None
    sub = Subscriber()
    notes: list[str] = []
    processes = max(1, min(8, -(-nodes // NODES_PER_PROCESS)))
    storm_budget_s = 2 * nodes / (DEFAULT_CONNECT_RATE_PER_S * processes) + 10
    fleet_duration_s = storm_budget_s + settle_s + steady_s + 5
    try:
        await asyncio.sleep(1.0)
        rss_idle = rss_bytes(collector.pid)
        watcher = asyncio.create_task(sub.run(base + "/api/v1/subscribe"))
        async with aiohttp.ClientSession() as session:
            health_url = base + "/api/v1/health"
            fleet_args = [
                sys.executable, str(REPO / "bench" / "fleet.py"), "--collector", base, "--nodes", str(nodes),
                "--interval", str(interval_s), "--duration", str(fleet_duration_s), "--no-dying", "--prefix", "e2e",
            ]  # fmt: skip
            if nodes > SPREAD_ABOVE_NODES:
                fleet_args.append("--spread-addresses")
            with (RESULTS.parent / f"fleet-{nodes}.err").open("wb") as fleet_err:
                fleet = await asyncio.create_subprocess_exec(
                    *fleet_args, stdout=asyncio.subprocess.PIPE, stderr=fleet_err, cwd=REPO, start_new_session=True
                )
            storm_started = time.monotonic()
            sub.phase = "storm"
            connected = await _connect_storm(session, health_url, nodes, storm_budget_s)
            if connected < nodes:
                notes.append(f"only {connected} of {nodes} connected within {storm_budget_s:.0f} s")
            storm_s = time.monotonic() - storm_started
            await asyncio.sleep(settle_s)
            if profile_dir is not None:
                spy = await _py_spy(collector.pid, steady_s, profile_dir / f"collector-{nodes}.txt")
            if fleet.returncode is not None:
                notes.append(f"the fleet exited early with status {fleet.returncode} (see fleet-{nodes}.err)")
            steady = await _steady(session, health_url, collector.pid, fleet.pid, sub, steady_s)
            summary = await _fleet_summary(fleet, fleet_duration_s + 60)
            await asyncio.sleep(1.0)
            final = await _get_json(session, health_url)
            store_health = final.get("store", {})
            if store_health.get("status") not in {None, "ok", "off"}:
                notes.append(f"store {store_health.get('status')}: {store_health.get('reason')}")
            listing = await _get_json(session, base + "/api/v1/nodes")
        steady_ms = sub.latencies_ms["steady"]
        return RunResult(
            nodes=nodes,
            store="off" if data_dir is None else "on",
            connected=connected,
            storm_s=round(storm_s, 1),
            storm_e2e_p99_ms=round(percentile(sub.latencies_ms["storm"], 0.99), 1),
            ingest_per_s=round(steady.ingest_per_s, 1),
            e2e_p50_ms=round(percentile(steady_ms, 0.50), 1),
            e2e_p99_ms=round(percentile(steady_ms, 0.99), 1),
            e2e_max_ms=round(max(steady_ms, default=float("nan")), 1),
            samples_measured=len(steady_ms),
            cpu_percent=round(steady.cpu_percent, 1),
            cpu_us_per_heartbeat=round(steady.cpu_us_per_heartbeat, 1),
            fleet_cpu_percent=round(steady.fleet_cpu_percent, 1),
            rss_mib=round(steady.rss_loaded / 2**20, 1),
            rss_kib_per_node=round((steady.rss_loaded - rss_idle) / 1024 / nodes, 1),
            health_p50_ms=round(percentile(steady.health_ms, 0.50), 2),
            health_p99_ms=round(percentile(steady.health_ms, 0.99), 2),
            health_max_ms=round(max(steady.health_ms, default=float("nan")), 2),
            loop_lag_max_ms=steady.lag_max_ms,
            sent=int(summary["sent"]),
            received=int(final["heartbeats_received"]),
            missing_samples=sum(entry["status"]["missing_samples"] for entry in listing["nodes"]),
            connect_errors=int(summary["connect_errors"]),
            note="; ".join(notes),
        )
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await watcher
        await _stop(spy)
        await _stop(fleet)
        await _stop(collector)


def table(results: Sequence[RunResult], msgpack_bytes: float, json_bytes: float) -> str:
    """The markdown table."""
    lines = [
        "| nodes | store | connect storm s | storm e2e p99 ms | ingest hb/s | e2e p50 ms | e2e p99 ms | e2e max ms | "
        "collector CPU % | collector CPU us/hb | fleet CPU % | "
        "RSS MiB | RSS KiB/node | health p50 ms | health p99 ms | health max ms | loop lag max ms | "
        "sent | received | lost | missing_samples |",
        "|" + "---:|" * 21,
    ]
    for r in results:
        lost = r.sent - r.received if r.sent >= 0 else -1
        lines.append(
            f"| {r.nodes:,} | {r.store} | {r.storm_s:.1f} | {r.storm_e2e_p99_ms:.0f} | {r.ingest_per_s:,.0f} | "
            f"{r.e2e_p50_ms:.1f} | {r.e2e_p99_ms:.1f} | "
            f"{r.e2e_max_ms:.1f} | {r.cpu_percent:.0f} | {r.cpu_us_per_heartbeat:.1f} | {r.fleet_cpu_percent:.0f} | "
            f"{r.rss_mib:.0f} | {r.rss_kib_per_node:.1f} | "
            f"{r.health_p50_ms:.2f} | {r.health_p99_ms:.2f} | {r.health_max_ms:.1f} | {r.loop_lag_max_ms:.1f} | "
            f"{r.sent:,} | {r.received:,} | {lost:,} | {r.missing_samples:,} |"
        )
    lines.append("")
    lines.append(f"bytes per heartbeat: msgpack {msgpack_bytes:.0f}, JSON {json_bytes:.0f} (same samples)")
    lines.extend(f"note ({r.nodes:,} nodes): {r.note}" for r in results if r.note)
    return "\n".join(lines)


async def bench(  # noqa: PLR0917 - one call site
    nodes_list: Sequence[int],
    interval_s: float,
    steady_s: float,
    settle_s: float,
    profile_dir: Path | None,
    wrapper: Path | None,
    stores: Sequence[str] = ("off", "on"),
) -> None:
    """Run every fleet size in turn, each with the store off and/or on, print the table and write the JSON."""
    results = []
    for nodes in nodes_list:
        for store in stores:
            print(f"e2e: {nodes:,} nodes, store {store} ...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(prefix="nodewatch-e2e-") as tmp:
                data_dir = Path(tmp) / "store" if store == "on" else None
                result = await run_one(nodes, interval_s, steady_s, settle_s, profile_dir, wrapper, data_dir)
            print(f"e2e: {json.dumps(asdict(result))}", file=sys.stderr, flush=True)
            results.append(result)
    msgpack_bytes, json_bytes = bytes_per_heartbeat()
    print(
        f"\nnodewatch end-to-end, {os.cpu_count()} CPUs, loopback, {interval_s:g} s interval, {steady_s:g} s steady\n"
    )
    print(table(results, msgpack_bytes, json_bytes))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "interval_s": interval_s,
                "steady_s": steady_s,
                "settle_s": settle_s,
                "cpus": os.cpu_count(),
                "bytes_per_heartbeat": {"msgpack": msgpack_bytes, "json": json_bytes},
                "runs": [asdict(r) for r in results],
            },
            indent=2,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options and run the benchmark."""
    parser = argparse.ArgumentParser(description="End-to-end fleet benchmark of nodewatch on loopback.")
    parser.add_argument("--nodes", default="1000,5000,10000,20000", help="comma-separated fleet sizes")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat interval in seconds (default 1)")
    parser.add_argument("--steady-s", type=float, default=30.0, help="seconds measured per size (default 30)")
    parser.add_argument(
        "--settle-s",
        type=float,
        default=SETTLE_S,
        help=f"seconds between the connect storm and the steady window (default {SETTLE_S:g})",
    )
    parser.add_argument(
        "--store",
        choices=["off", "on", "both"],
        default="both",
        help="the collector's durable store: off (--ephemeral), on (a fresh --data-dir), or both side by side",
    )
    parser.add_argument("--profile-dir", type=Path, help="also record the collector with py-spy (raw) into DIR")
    parser.add_argument(
        "--collector-wrapper",
        type=Path,
        metavar="SCRIPT",
        help="run SCRIPT (taking the collector's options) instead of 'nodewatch collector', for experiments",
    )
    args = parser.parse_args(argv)
    try:
        nodes_list = [int(n) for n in args.nodes.split(",")]
    except ValueError:
        parser.error(f"--nodes: expected comma-separated integers, got {args.nodes!r}")
    if any(n < 1 or n > 60_000 for n in nodes_list):
        parser.error(f"--nodes: expected sizes 1-60000, got {args.nodes!r}")
    if not 5 <= args.steady_s <= 600:
        parser.error(f"--steady-s: expected 5-600 seconds, got {args.steady_s}")
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    raise_nofile_limit()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not 0 <= args.settle_s <= 600:
        parser.error(f"--settle-s: expected 0-600 seconds, got {args.settle_s}")
    asyncio.run(
        bench(
            nodes_list,
            args.interval,
            args.steady_s,
            args.settle_s,
            args.profile_dir,
            args.collector_wrapper,
            ("off", "on") if args.store == "both" else (args.store,),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
