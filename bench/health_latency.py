"""Benchmark: /api/v1/health latency while the collector ingests ~2,000 heartbeats/s.

Starts a real ``nodewatch collector`` subprocess on 127.0.0.1 (port 0), then
measures GET /api/v1/health latency (one keep-alive client, one request every
10 ms) twice in the same run: idle, and while a separate load process runs
AGENTS websocket agents at RATE Hz each plus SUBSCRIBERS viewers that drain
the subscribe websocket (fan-out is part of a real collector's load). It also
reports the collector's own event-loop lag (the worst ``event_loop_lag_max_ms``
that health reported while probing). Prints a markdown table.

Run: .venv/bin/python bench/health_latency.py [--agents 2000] [--rate 1.0] [--duration 30] [--subscribers 1]
Target: p99 < 5 ms under load.

Not a test: it checks nothing, it measures. Everything runs on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import msgpack

from bench._stats import median, percentile
from nodewatch.simnodes import sim_facts
from shared.codec import encode, to_wire_dict
from shared.messages import Heartbeat, Hello

REPO = Path(__file__).resolve().parents[1]
PROBE_INTERVAL_S = 0.01
CONNECT_CONCURRENCY = 64


def _heartbeat_template(rng: random.Random) -> dict[str, Any]:
    """A realistic heartbeat (~0.5 KiB) as a wire map; the load loop only changes seq and sampled_at.

    Packing a map instead of building a pydantic model per send keeps the
    simulator's CPU use low, so it steals less of the 2 cores from the collector.
    """
    return to_wire_dict(
        Heartbeat(
            seq=1,
            sampled_at=time.time(),
            cpu_percent=rng.uniform(0, 100),
            cpu_per_core_percent=[rng.uniform(0, 100) for _ in range(4)],
            load_avg=[1.0, 0.8, 0.5],
            mem_used_bytes=8 * 2**30,
            mem_available_bytes=8 * 2**30,
            mem_percent=50.0,
            disks={"/": [500 * 2**30, 200 * 2**30]},
            disk_read_bytes_per_s=rng.uniform(0, 1e6),
            disk_write_bytes_per_s=rng.uniform(0, 1e6),
            net_rx_bytes_per_s=rng.uniform(0, 1e6),
            net_tx_bytes_per_s=rng.uniform(0, 1e6),
            process_count=200,
            uptime_s=1000.0,
        )
    )


async def _agent(
    session: aiohttp.ClientSession, ws_url: str, i: int, *, rate_hz: float, stop_at: float, gate: asyncio.Semaphore
) -> int:
    rng = random.Random(i)
    async with gate:
        ws = await session.ws_connect(ws_url, heartbeat=None, compress=0)
        await ws.send_bytes(
            encode(
                Hello(
                    node_id=f"sim-{i:05d}",
                    agent_instance_id=uuid.uuid4().hex,
                    interval_s=1 / rate_hz,
                    sent_at=time.time(),
                    facts=sim_facts(f"sim-{i:05d}"),
                )
            )
        )
        await ws.receive()
    sent = 0
    template = _heartbeat_template(rng)
    next_at = time.monotonic() + rng.uniform(0, 1 / rate_hz)  # spread agents over the interval
    try:
        while next_at < stop_at:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            sent += 1
            template["seq"], template["sampled_at"] = sent, time.time()
            await ws.send_bytes(msgpack.packb(template))
            await ws.receive()  # the ack
            next_at += 1 / rate_hz
    finally:
        await ws.close()
    return sent


async def _subscriber(session: aiohttp.ClientSession, url: str, stop_at: float) -> int:
    """A viewer that reads every frame (and decodes nothing); returns how many frames it got."""
    frames = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, stop_at - time.monotonic())):
            async with session.ws_connect(url, max_msg_size=0, compress=0) as ws:
                async for _msg in ws:
                    frames += 1
    return frames


async def run_load(base_url: str, agents: int, rate_hz: float, duration_s: float, subscribers: int) -> None:
    """The load process: ``agents`` websocket agents sending at ``rate_hz`` for ``duration_s``, and viewers."""
    ws_url = base_url.replace("http", "ws", 1) + "/api/v1/ingest"
    stop_at = time.monotonic() + duration_s
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        viewers = [
            asyncio.create_task(_subscriber(session, base_url + "/api/v1/subscribe", stop_at))
            for _ in range(subscribers)
        ]
        results = await asyncio.gather(
            *(_agent(session, ws_url, i, rate_hz=rate_hz, stop_at=stop_at, gate=gate) for i in range(agents)),
            return_exceptions=True,
        )
        frames = await asyncio.gather(*viewers, return_exceptions=True)
    print(f"load: subscribers got {frames} frames", file=sys.stderr)
    failures = [r for r in results if isinstance(r, BaseException)]
    sent = sum(r for r in results if isinstance(r, int))
    print(f"load: {sent} heartbeats from {agents - len(failures)} agents, {len(failures)} failed", file=sys.stderr)


async def probe(session: aiohttp.ClientSession, url: str, duration_s: float) -> tuple[list[float], float, float]:
    """GET health every PROBE_INTERVAL_S for ``duration_s``; return latencies in ms, the last rate, the worst lag."""
    latencies: list[float] = []
    rate = 0.0
    lag_max_ms = 0.0
    stop_at = time.monotonic() + duration_s
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        async with session.get(url) as resp:
            body = await resp.json()
        latencies.append((time.perf_counter() - start) * 1000)
        rate = float(body["ingest_heartbeats_per_s"])
        lag_max_ms = max(lag_max_ms, float(body["event_loop_lag_max_ms"]))
        await asyncio.sleep(PROBE_INTERVAL_S)
    return latencies, rate, lag_max_ms


def _row(name: str, agents: int, rate: float, latencies: list[float], lag_max_ms: float) -> str:
    return (
        f"| {name} | {agents} | {rate:,.0f} | {len(latencies)} | {median(latencies):.2f} "
        f"| {percentile(latencies, 0.99):.2f} | {max(latencies, default=math.nan):.2f} | {lag_max_ms:.1f} |"
    )


async def bench(agents: int, rate_hz: float, duration_s: float, idle_s: float, subscribers: int) -> None:
    """Start a collector, probe it idle, then under load, and print the table."""
    collector = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nodewatch", "collector", "--bind", "127.0.0.1:0", "--ephemeral",
        "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    load: asyncio.subprocess.Process | None = None
    try:
        assert collector.stdout is not None
        async with asyncio.timeout(20):
            line = (await collector.stdout.readline()).decode()
        base_url = line.split()[4]
        health_url = base_url + "/api/v1/health"
        async with aiohttp.ClientSession() as session:
            idle, _, idle_lag_ms = await probe(session, health_url, idle_s)
            load = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--load", base_url, "--agents", str(agents), "--rate", str(rate_hz),
                "--duration", str(duration_s + 15), "--subscribers", str(subscribers),
            )  # fmt: skip
            # Let every agent connect and the rate meter fill its 10 s window before measuring.
            await asyncio.sleep(12)
            loaded, rate, loaded_lag_ms = await probe(session, health_url, duration_s)
        print(
            f"\nnodewatch collector /api/v1/health latency, {os.cpu_count()} CPUs, loopback, "
            f"{subscribers} subscriber(s), ms\n"
        )
        print("| phase | agents | heartbeats/s (collector) | requests | p50 | p99 | max | loop lag max |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print(_row("idle", 0, 0.0, idle, idle_lag_ms))
        print(_row("under load", agents, rate, loaded, loaded_lag_ms))
    finally:
        for proc in (load, collector):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(20):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def main() -> int:
    """Parse options and run the benchmark (or, with --load, the load process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1.0, help="heartbeats per second per agent")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured under load")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds measured idle first")
    parser.add_argument("--subscribers", type=int, default=1, help="viewers draining the subscribe websocket")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        loop_runner = asyncio.Runner()
        with loop_runner:
            main_task = loop_runner.get_loop().create_task(
                run_load(args.load, args.agents, args.rate, args.duration, args.subscribers)
            )
            loop_runner.get_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                loop_runner.run(_wait(main_task))
        return 0
    asyncio.run(bench(args.agents, args.rate, args.duration, args.idle, args.subscribers))
    return 0


async def _wait(task: asyncio.Task[None]) -> None:
    await task


if __name__ == "__main__":
    sys.exit(main())
