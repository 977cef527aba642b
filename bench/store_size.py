"""Benchmark: disk bytes per node-day per tier, write amplification, insert and commit cost of the store.

Simulates ``--nodes`` nodes at 1 Hz for ``--hours`` hours against a real
``SqliteEngine`` on disk, with a fake wall clock: one commit per simulated
second (what the writer does at 1 Hz), maintenance every 60 simulated seconds.
Values are noisy like real ones: CPU a random walk in hundredths, memory drifting,
rates log-normal float32, sampled_at with microsecond jitter. Then the clock
jumps a day ahead so the last hours and the day roll up too.

A second part times commits with ``synchronous=NORMAL`` and ``FULL`` side by
side (the same batches, the same disk): ``FULL`` adds one fsync of the WAL per commit.

Prints markdown tables and the command line. Single process, no network.

Run: .venv/bin/python bench/store_size.py --nodes 200 --hours 3
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.history import BYTES_PER_POINT
from collector.store.codec import Columns, encode_raw, quantize_rates
from collector.store.model import NodeRow, Sample
from collector.store.sqlite_engine import SqliteEngine, Sync

T0 = 1_800_000_000.0 // 86400 * 86400  # a midnight, so hours and days line up with chunks
MAINTAIN_EVERY_S = 60
# Rate precisions to size the raw tier at (23: float32 as the ring keeps it, lossless).
RATE_BITS = (23, 15, 11, 7)


class Node:
    """One simulated node's slowly varying state."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cpu = rng.uniform(2, 60)
        self.mem = rng.uniform(20, 80)
        self.load = rng.uniform(0.1, 4)
        self.scale = 10 ** rng.uniform(3, 6)  # bytes/s scale of this node's traffic

    def values(self) -> tuple[float | None, ...]:
        """The next sample's values."""
        rng = self.rng
        self.cpu = min(100.0, max(0.0, self.cpu + rng.gauss(0, 3)))
        self.mem = min(100.0, max(0.0, self.mem + rng.gauss(0, 0.05)))
        self.load = max(0.0, self.load + rng.gauss(0, 0.05))
        rates = [self.scale * math.exp(rng.gauss(0, 1)) for _ in range(4)]
        rates[2] = 0.0 if rng.random() < 0.7 else rates[2]  # disks are often idle
        return (round(self.cpu, 2), round(self.mem, 2), round(self.load, 2), *rates)


def io_written() -> int:
    """Bytes this process has passed to write(2) so far (/proc/self/io wchar): what the WAL and db got."""
    with Path("/proc/self/io").open(encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def drain(engine: SqliteEngine, now_at: float) -> None:
    """Maintain until nothing is left to compact or consolidate (the writer would, across commits)."""
    for _ in range(3):  # both heads
        engine.maintain(now_at)
    while engine.maintain(now_at).more_work:
        pass


def simulate(data_dir: Path, nodes: int, hours: float, seed: int) -> dict[str, float]:
    """Write ``hours`` of 1-Hz samples of ``nodes`` nodes; return sizes and timings."""
    rng = random.Random(seed)
    sims = [Node(rng) for _ in range(nodes)]
    clock = [T0]
    engine = SqliteEngine(data_dir, wall_clock=lambda: clock[0])
    engine.write([], [NodeRow(f"node-{i:04d}", f"inst-{i}", b"\x80", 1.0, "online", T0) for i in range(nodes)])
    seconds = int(hours * 3600)
    written_before = io_written()
    write_s = maintain_s = 0.0
    write_bytes = 0
    for t in range(seconds):
        batch = [
            Sample(f"node-{i:04d}", f"inst-{i}", t + 1, T0 + t + rng.uniform(0, 0.002), sim.values())
            for i, sim in enumerate(sims)
        ]
        started, before = time.perf_counter(), io_written()
        engine.write(batch, [])
        write_s += time.perf_counter() - started
        write_bytes += io_written() - before
        clock[0] += 1.0
        if t % MAINTAIN_EVERY_S == MAINTAIN_EVERY_S - 1:
            started = time.perf_counter()
            engine.maintain(clock[0])
            maintain_s += time.perf_counter() - started
    # Past the last hour's end (plus grace): every hour rolls up, its raw segments merge into one chunk.
    clock[0] = T0 + math.ceil(seconds / 3600) * 3600 + engine.policy.close_grace_s + 1
    started = time.perf_counter()
    drain(engine, clock[0])
    maintain_s += time.perf_counter() - started
    written = io_written() - written_before
    stats = engine.reader.stats()
    recent = engine.load_recent(T0)
    for bits in RATE_BITS:
        total = 0
        for points in recent.values():
            cols = Columns.from_values(points.seq, points.sampled_at, list(zip(*points.series, strict=True)))
            quantize_rates(cols, bits)
            total += len(encode_raw(cols))
        stats[f"raw_bytes_{bits}_bits"] = total
    # Past the day's end too, for the 1-h tier (raw retention has dropped the raw chunks by then).
    clock[0] = T0 + 86400 + engine.policy.close_grace_s + 1
    drain(engine, clock[0])
    hourly = engine.reader.stats()
    stats.update({k: v for k, v in hourly.items() if k.startswith("1h_")})
    engine.close()
    samples = nodes * seconds
    return {
        "samples": samples,
        "node_days": nodes * seconds / 86400,
        "node_hours": nodes * seconds / 3600,
        "write_us_per_sample": write_s / samples * 1e6,
        "maintain_us_per_sample": maintain_s / samples * 1e6,
        "wchar": written,
        "write_wchar": write_bytes,
        **{k: float(v or 0) for k, v in stats.items()},
    }


def commit_cost(data_dir: Path, sync: Sync, nodes: int, commits: int, seed: int) -> list[float]:
    """Milliseconds per commit of one second's batch of ``nodes`` samples, with ``synchronous=sync``."""
    rng = random.Random(seed)
    sims = [Node(rng) for _ in range(nodes)]
    engine = SqliteEngine(data_dir, sync=sync, wall_clock=lambda: T0)
    times = []
    for t in range(commits):
        batch = [Sample(f"n{i}", "i", t + 1, T0 + t, sim.values()) for i, sim in enumerate(sims)]
        started = time.perf_counter()
        engine.write(batch, [])
        times.append((time.perf_counter() - started) * 1000)
    engine.close()
    return times


def restart(data_dir: Path, nodes: int, seconds: int, seed: int) -> dict[str, float]:
    """Write ``seconds`` of ``nodes`` nodes as the writer would, close, reopen: how long each restart step takes."""
    rng = random.Random(seed)
    sims = [Node(rng) for _ in range(nodes)]
    clock = [T0]
    engine = SqliteEngine(data_dir, wall_clock=lambda: clock[0])
    engine.write([], [NodeRow(f"node-{i:05d}", f"inst-{i}", b"\x80", 1.0, "online", T0) for i in range(nodes)])
    for t in range(seconds):
        engine.write([Sample(f"node-{i:05d}", f"inst-{i}", t + 1, T0 + t, s.values()) for i, s in enumerate(sims)], [])
        clock[0] += 1.0
        if t % MAINTAIN_EVERY_S == MAINTAIN_EVERY_S - 1:
            engine.maintain(clock[0])
    engine.close()
    started = time.perf_counter()
    engine = SqliteEngine(data_dir, wall_clock=lambda: clock[0])
    opened = time.perf_counter()
    rows = engine.load_nodes()
    loaded = time.perf_counter()
    recent = engine.load_recent(clock[0] - seconds)
    done = time.perf_counter()
    points = sum(len(r.columns) for r in recent.values())
    size = engine.reader.stats()["db_bytes"]
    engine.close()
    if len(rows) != nodes or points != nodes * seconds:
        raise RuntimeError(f"expected {nodes} nodes and {nodes * seconds} points back, got {len(rows)} and {points}")
    return {"open_s": opened - started, "nodes_s": loaded - opened, "recent_s": done - loaded, "points": points,
            "db_bytes": size}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run both parts and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--commits", type=int, default=200, help="commits per synchronous mode")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--restart-nodes", type=int, default=1000, help="nodes for the restart timing (0: skip)")
    parser.add_argument("--restart-seconds", type=int, default=900, help="seconds of history for the restart timing")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the stores (default: a temp dir)")
    args = parser.parse_args(argv)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        r = simulate(root / "size", args.nodes, args.hours, args.seed)
        reopened = (
            restart(root / "restart", args.restart_nodes, args.restart_seconds, args.seed)
            if args.restart_nodes
            else None
        )
        cost = {
            (sync, n): commit_cost(root / f"{sync}-{n}", sync, n, args.commits, args.seed)
            for n in (args.nodes, 10 * args.nodes)
            for sync in ("NORMAL", "FULL")
        }
    days, hours = r["node_days"], r["node_hours"]
    raw_per_day = r["raw_chunk_bytes"] / days
    print(f"\n{args.nodes} nodes x {args.hours:g} h at 1 Hz = {int(r['samples']):,} samples ({days:.2f} node-days)\n")
    print("| tier | chunk rows | bytes per sample/bucket | bytes per node-day | per 1,000 node-days |")
    print("|---|---|---|---|---|")
    print(
        f"| raw | {int(r['raw_chunks'])} | {r['raw_chunk_bytes'] / r['samples']:.2f} | {raw_per_day:,.0f} | "
        f"{raw_per_day * 1000 / 2**30:.3f} GiB |"
    )
    for tier, per_hour in (("1m", 60), ("1h", 1)):
        total = r[f"{tier}_chunk_bytes"]
        per_day = total / days
        print(
            f"| {tier} | {int(r[f'{tier}_chunks'])} | {total / (hours * per_hour):.1f} | {per_day:,.0f} | "
            f"{per_day * 1000 / 2**30:.3f} GiB |"
        )
    print("\n| rates kept to | max relative error | raw bytes per sample | per 1,000 node-days |")
    print("|---|---|---|---|")
    for bits in RATE_BITS:
        size = r[f"raw_bytes_{bits}_bits"]
        error = "0 (lossless float32)" if bits == 23 else f"{2.0 ** -(bits + 1):.1e}"
        print(f"| {bits} mantissa bits | {error} | {size / r['samples']:.2f} | {size / days * 1000 / 2**30:.3f} GiB |")
    on_disk = r["db_bytes"] + r["wal_bytes"]
    print(f"\ndatabase file {r['db_bytes'] / 2**20:.1f} MiB + WAL {r['wal_bytes'] / 2**20:.1f} MiB after the run")
    ring_bytes = r["samples"] * BYTES_PER_POINT
    print(
        f"write amplification: {r['wchar'] / 2**20:.0f} MiB written for {ring_bytes / 2**20:.0f} MiB of samples "
        f"at the ring's {BYTES_PER_POINT} B/point = {r['wchar'] / ring_bytes:.2f}x; "
        f"{r['wchar'] / max(1.0, r['raw_chunk_bytes']):.0f}x the raw chunks' size; file now {on_disk / 2**20:.1f} MiB"
    )
    print(
        f"of which write() (the commits): {r['write_wchar'] / r['samples']:.0f} B per sample; "
        f"maintain() and checkpoints the rest: {(r['wchar'] - r['write_wchar']) / r['samples']:.0f} B per sample"
    )
    print(
        f"insert: {r['write_us_per_sample']:.2f} us per sample in write() (one commit per second), "
        f"+ {r['maintain_us_per_sample']:.2f} us per sample in maintain() (compaction, rollups, retention)\n"
    )
    print("| synchronous | samples per commit | commits | ms per commit, median | p99 | us per sample |")
    print("|---|---|---|---|---|---|")
    for (sync, n), times in cost.items():
        p99 = sorted(times)[min(len(times) - 1, int(len(times) * 0.99))]
        median = statistics.median(times)
        print(f"| {sync} | {n} | {len(times)} | {median:.2f} | {p99:.2f} | {median * 1000 / n:.2f} |")
    if reopened is not None:
        print(
            f"\nrestart: {args.restart_nodes} nodes x {args.restart_seconds} s "
            f"({reopened['db_bytes'] / 2**20:.0f} MiB): "
            f"open (quick_check) {reopened['open_s']:.2f} s, load_nodes {reopened['nodes_s']:.2f} s, "
            f"load_recent {reopened['recent_s']:.2f} s for {int(reopened['points']):,} points "
            f"({reopened['recent_s'] / reopened['points'] * 1e6:.2f} us per point)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
