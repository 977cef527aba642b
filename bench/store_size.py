"""Benchmark: disk bytes per node-day per tier, write amplification, insert and commit cost of the store.

For each data set of ``--data`` (``bench/_store_data.py`` says what each one is: ``fleet``, a
realistic simulated fleet at the wire's resolution; ``white``, the earlier bench's white noise,
the worst case; ``--recorded FILE``, this host's real agent as one node), simulates ``--nodes``
nodes at 1 Hz for ``--hours`` hours against a real ``SqliteEngine`` on disk, with a fake wall
clock: one commit per simulated second (what the writer does at 1 Hz), maintenance every 60
simulated seconds. Then the clock jumps a day ahead so the last hours and the day roll up too.

The raw tier is as stored (v2 consolidated chunks); beside it, the same node-hours encoded as
v1 (the encoding before), with the CPU of both encodings per sample, in the same run.

A second part times commits with ``synchronous=NORMAL`` and ``FULL`` side by
side (the same batches, the same disk): ``FULL`` adds one fsync of the WAL per commit.

Prints markdown tables and the command line. Single process, no network.

Run: .venv/bin/python bench/store_size.py --nodes 200 --hours 2 [--recorded bench/results/heartbeats-this-host.jsonl]
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

from bench import _store_data as data
from collector.history import BYTES_PER_POINT, SERIES
from collector.store.codec import FORMAT_VERSION, SMALL, Columns, decode_raw, encode_raw, quantize_rates
from collector.store.model import NodeRow, RawPoints, Sample
from collector.store.sqlite_engine import SqliteEngine, Sync

T0 = 1_800_000_000.0 // 86400 * 86400  # a midnight, so hours and days line up with chunks
MAINTAIN_EVERY_S = 60
# Rate precisions to size the raw tier at (23: float32 as the ring keeps it, lossless).
RATE_BITS = (23, 11, 7)
GIB = 2**30


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


def node_hours(recent: dict[str, RawPoints]) -> list[Columns]:
    """Each node's points cut at the hours, as consolidated raw chunks are."""
    out = []
    for points in recent.values():
        cols = points.columns
        hours = [us // 3_600_000_000 for us in cols.at_us]
        lo = 0
        for hi in range(1, len(hours) + 1):
            if hi == len(hours) or hours[hi] != hours[lo]:
                out.append(cols.slice(lo, hi))
                lo = hi
    return out


def codec_costs(chunks: list[Columns]) -> dict[str, float]:
    """Bytes and process CPU seconds of encoding ``chunks`` as v1 and v2 (the best of 3), each checked exact."""
    out: dict[str, float] = {}
    for name, version in (("v1", FORMAT_VERSION), ("v2", None)):
        blobs = [encode_raw(c, SMALL, version=version) for c in chunks]
        if any(decode_raw(b).points() != c.points() for b, c in zip(blobs, chunks, strict=True)):
            raise RuntimeError(f"{name}: a chunk did not read back as written")
        out[f"{name}_bytes"] = sum(map(len, blobs))
        encode = decode = math.inf
        for _ in range(3):
            started = time.process_time()
            for c in chunks:
                encode_raw(c, SMALL, version=version)
            middle = time.process_time()
            for b in blobs:
                decode_raw(b)
            encode, decode = min(encode, middle - started), min(decode, time.process_time() - middle)
        out[f"{name}_encode_s"], out[f"{name}_decode_s"] = encode, decode
    for bits in RATE_BITS:
        total = 0
        for c in chunks:
            lossy = c.slice(0, len(c))
            quantize_rates(lossy, bits)
            total += len(encode_raw(lossy))
        out[f"raw_bytes_{bits}_bits"] = total
    return out


def simulate(data_dir: Path, source: data.Source, nodes: int, seconds: int, seed: int) -> dict[str, float]:
    """Write ``seconds`` of 1-Hz samples of ``nodes`` nodes of ``source``; return sizes and timings."""
    rng = random.Random(seed)
    sims = [source(rng, T0, seconds) for _ in range(nodes)]
    clock = [T0]
    engine = SqliteEngine(data_dir, wall_clock=lambda: clock[0])
    engine.write([], [NodeRow(f"node-{i:04d}", f"inst-{i}", b"\x80", 1.0, "online", T0) for i in range(nodes)])
    written_before = io_written()
    write_s = maintain_s = 0.0
    write_bytes = samples = 0
    for t in range(seconds):
        batch = [Sample(f"node-{i:04d}", f"inst-{i}", *next(sim)) for i, sim in enumerate(sims)]
        samples += len(batch)
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
    stats: dict[str, float] = {k: float(v or 0) for k, v in engine.reader.stats().items()}
    stats.update(codec_costs(node_hours(engine.load_recent(T0))))
    # Past the day's end too, for the 1-h tier (raw retention has dropped the raw chunks by then).
    clock[0] = T0 + 86400 + engine.policy.close_grace_s + 1
    drain(engine, clock[0])
    stats.update({k: float(v or 0) for k, v in engine.reader.stats().items() if k.startswith("1h_")})
    engine.close()
    return {
        "samples": samples,
        "node_days": samples / 86400,
        "node_hours": samples / 3600,
        "write_us_per_sample": write_s / samples * 1e6,
        "maintain_us_per_sample": maintain_s / samples * 1e6,
        "wchar": written,
        "write_wchar": write_bytes,
        **stats,
    }


def commit_cost(data_dir: Path, sync: Sync, nodes: int, commits: int, seed: int) -> list[float]:
    """Milliseconds per commit of one second's batch of ``nodes`` samples, with ``synchronous=sync``."""
    rng = random.Random(seed)
    sims = [data.fleet(rng, T0, commits) for _ in range(nodes)]
    engine = SqliteEngine(data_dir, sync=sync, wall_clock=lambda: T0)
    times = []
    for _ in range(commits):
        batch = [Sample(f"n{i}", "i", *next(sim)) for i, sim in enumerate(sims)]
        started = time.perf_counter()
        engine.write(batch, [])
        times.append((time.perf_counter() - started) * 1000)
    engine.close()
    return times


def restart(data_dir: Path, nodes: int, seconds: int, seed: int) -> dict[str, float]:
    """Write ``seconds`` of ``nodes`` nodes as the writer would, close, reopen: how long each restart step takes."""
    rng = random.Random(seed)
    sims = [data.fleet(rng, T0, seconds) for _ in range(nodes)]
    clock = [T0]
    engine = SqliteEngine(data_dir, wall_clock=lambda: clock[0])
    engine.write([], [NodeRow(f"node-{i:05d}", f"inst-{i}", b"\x80", 1.0, "online", T0) for i in range(nodes)])
    for t in range(seconds):
        engine.write([Sample(f"node-{i:05d}", f"inst-{i}", *next(s)) for i, s in enumerate(sims)], [])
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


def report(label: str, r: dict[str, float]) -> None:
    """One data set's tables: bytes per tier (raw v1 and v2 side by side), write amplification, CPU."""
    days, hours, n = r["node_days"], r["node_hours"], r["samples"]
    print(f"\n### {label}: {int(n):,} samples ({days:.2f} node-days)\n")
    print(
        "| tier | chunk rows | bytes per sample/bucket | bytes per value | bytes per node-day | per 1,000 node-days |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    rows = [("raw, v1 (before; same node-hours re-encoded)", "", r["v1_bytes"], n),
            ("raw, v2 (as stored)", f"{int(r['raw_chunks'])}", r["raw_chunk_bytes"], n)]  # fmt: skip
    rows += [
        (tier, f"{int(r[f'{tier}_chunks'])}", r[f"{tier}_chunk_bytes"], hours * per_hour)
        for tier, per_hour in (("1m", 60), ("1h", 1))
    ]
    for name, chunks, total, units in rows:
        per = total / units
        print(
            f"| {name} | {chunks} | {per:.2f} | {per / len(SERIES):.2f} | {total / days:,.0f} | "
            f"{total / days * 1000 / GIB:.3f} GiB |"
        )
    print("\n| raw chunk encoding | encode µs/sample | decode µs/sample | rates kept to | raw per 1,000 node-days |")
    print("|---|---:|---:|---|---:|")
    for name in ("v1", "v2"):
        encode, decode = r[f"{name}_encode_s"] / n * 1e6, r[f"{name}_decode_s"] / n * 1e6
        size = r[f"{name}_bytes"] / days * 1000 / GIB
        print(f"| {name} | {encode:.2f} | {decode:.2f} | float32 (lossless) | {size:.3f} GiB |")
    for bits in RATE_BITS[1:]:
        size = r[f"raw_bytes_{bits}_bits"] / days * 1000 / GIB
        print(f"| v2, lossy | | | {bits} mantissa bits (max error {2.0 ** -(bits + 1):.1e}) | {size:.3f} GiB |")
    ring_bytes = n * BYTES_PER_POINT
    on_disk = r["db_bytes"] + r["wal_bytes"]
    print(
        f"\nwrite amplification: {r['wchar'] / 2**20:.0f} MiB written for {ring_bytes / 2**20:.0f} MiB of samples "
        f"at the ring's {BYTES_PER_POINT} B/point = {r['wchar'] / ring_bytes:.2f}x "
        f"({r['wchar'] / max(1.0, r['raw_chunk_bytes']):.0f}x the raw chunks' size); "
        f"write(): {r['write_wchar'] / n:.0f} B per sample, maintain() and checkpoints: "
        f"{(r['wchar'] - r['write_wchar']) / n:.0f} B per sample; file now {on_disk / 2**20:.1f} MiB"
    )
    print(
        f"insert: {r['write_us_per_sample']:.2f} us per sample in write() (one commit per second), "
        f"+ {r['maintain_us_per_sample']:.2f} us per sample in maintain() (compaction, rollups, retention)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run both parts and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--data", default="fleet,white", help="data sets, comma-separated: fleet, white")
    parser.add_argument("--recorded", type=Path, default=None, help="a bench/store_record.py recording (one node)")
    parser.add_argument("--commits", type=int, default=200, help="commits per synchronous mode")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--restart-nodes", type=int, default=1000, help="nodes for the restart timing (0: skip)")
    parser.add_argument("--restart-seconds", type=int, default=900, help="seconds of history for the restart timing")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the stores (default: a temp dir)")
    args = parser.parse_args(argv)
    names = [name for name in args.data.split(",") if name]
    if unknown := [name for name in names if name not in data.SOURCES]:
        parser.error(f"--data: expected some of {', '.join(data.SOURCES)}, got {', '.join(unknown)}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    seconds = int(args.hours * 3600)
    runs = [
        (f"{name}: {args.nodes} nodes x {args.hours:g} h", data.SOURCES[name], args.nodes, seconds) for name in names
    ]
    if args.recorded is not None:
        recording = data.recorded(args.recorded)
        runs.append(
            (f"recorded: this host's agent, 1 node x {len(recording)} s", data.replayed(recording), 1, len(recording))
        )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        results = [
            (label, simulate(root / f"size-{i}", src, nodes, secs, args.seed))
            for i, (label, src, nodes, secs) in enumerate(runs)
        ]
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
    print("\ndata sets (bench/_store_data.py): fleet, realistic, at the wire's resolution; white, the worst case")
    for label, r in results:
        report(label, r)
    print("\ncommits and restart: the fleet data set\n")
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
