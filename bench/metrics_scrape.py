"""Benchmark: how long a /metrics scrape of a big fleet takes, and how long it stalls the event loop.

Builds a collector cache of ``--nodes`` nodes (each with one sample kept as its
frame, as ingest keeps it), then scrapes it ``--scrapes`` times two ways in one
run: rendered on the event loop (as the collector did before) and the shipped
way, a snapshot on the loop and the rendering in a thread
(``collector.metrics.render_metrics``). A probe task sleeps 5 ms at a time and
records how late it wakes: the stall any heartbeat or viewer would have seen.

Prints a markdown table of medians. In-process and loopback-free: it measures
the exposition, not HTTP.

Run: .venv/bin/python bench/metrics_scrape.py --nodes 10000 --scrapes 5
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stats import median
from collector.cache import NodeCache
from collector.metrics import CollectorStats, render_metrics, take_snapshot
from nodewatch.simnodes import sim_facts
from shared.codec import encode
from shared.messages import Heartbeat, Hello

PROBE_SLEEP_S = 0.005
WALL = 1_800_000_000.0


def build_cache(nodes: int) -> NodeCache:
    """A cache of ``nodes`` online nodes, each holding one realistic sample as its frame."""
    cache = NodeCache(max_nodes=nodes)
    facts = sim_facts("h")
    for i in range(nodes):
        node_id = f"node-{i:05d}"
        hello = Hello(node_id=node_id, agent_instance_id=f"i{i}", interval_s=1.0, sent_at=WALL, facts=facts)
        cache.hello(hello, conn=i, now=1.0, wall=WALL)
        sample = Heartbeat(
            seq=1, sampled_at=WALL, cpu_percent=12.5, mem_percent=40.0, load_avg=[0.5, 0.4, 0.3],
            mem_used_bytes=2**32, mem_available_bytes=2**33, net_rx_bytes_per_s=1000.0, net_tx_bytes_per_s=500.0,
            disk_read_bytes_per_s=10.0, disk_write_bytes_per_s=20.0, process_count=200, uptime_s=86400.0,
        )  # fmt: skip
        cache.heartbeat(node_id, i, sample, 1.0, WALL, frame=encode(sample))
    return cache


async def _probe(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(PROBE_SLEEP_S)
        lags.append(loop.time() - start - PROBE_SLEEP_S)


async def _one_scrape(scrape: Callable[[], object]) -> tuple[float, float]:
    """(scrape seconds, worst loop lag seconds) for one scrape with the probe running."""
    stop = asyncio.Event()
    lags: list[float] = []
    probe = asyncio.create_task(_probe(stop, lags))
    await asyncio.sleep(0.05)
    start = time.perf_counter()
    result = scrape()
    if asyncio.iscoroutine(result):
        await result
    elapsed = time.perf_counter() - start
    await asyncio.sleep(0.02)
    stop.set()
    await probe
    return elapsed, max(lags, default=0.0)


async def bench(nodes: int, scrapes: int) -> None:
    cache, stats = build_cache(nodes), CollectorStats()

    def on_loop() -> bytes:
        return render_metrics(take_snapshot(cache, stats))

    async def off_loop() -> bytes:
        return await asyncio.to_thread(render_metrics, take_snapshot(cache, stats))

    results: dict[str, list[tuple[float, float]]] = {"on the event loop (before)": [], "snapshot + thread": []}
    for _ in range(scrapes):  # interleaved, so both see the same machine
        results["on the event loop (before)"].append(await _one_scrape(on_loop))
        results["snapshot + thread"].append(await _one_scrape(off_loop))
    body = on_loop()
    print(f"\n/metrics at {nodes:,} nodes ({len(body):,} bytes), {scrapes} scrapes each way, medians\n")
    print("| rendering | scrape ms | worst event-loop stall ms |")
    print("|---|---:|---:|")
    for name, runs in results.items():
        scrape_ms = median(r[0] for r in runs) * 1000
        stall_ms = median(r[1] for r in runs) * 1000
        print(f"| {name} | {scrape_ms:,.0f} | {stall_ms:,.0f} |")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description="Cost of a /metrics scrape, on and off the event loop.")
    parser.add_argument("--nodes", type=int, default=10_000, help="fleet size (default 10000)")
    parser.add_argument("--scrapes", type=int, default=5, help="scrapes per way (default 5)")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 100_000:
        parser.error(f"--nodes: expected 1-100000, got {args.nodes}")
    if not 1 <= args.scrapes <= 50:
        parser.error(f"--scrapes: expected 1-50, got {args.scrapes}")
    asyncio.run(bench(args.nodes, args.scrapes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
