"""Benchmark: candidate raw-chunk encodings against the store's own, on the same simulated hours.

The raw tier is 1.42 GiB per 1,000 node-days lossless (docs/store.md), over the 1 GiB goal.
This measures, per column and in total, what cheaper lossless encodings would give on
``bench/store_size.py``'s simulated nodes (one node-hour per chunk, as consolidated):

- ``v1``: the store's format (seq and time deltas, the value columns as they are; byte
  shuffle; zlib level 6);
- ``zigzag``: the integer value columns (CPU, memory, load in hundredths) as zigzag deltas;
- ``lzma``: either of them with ``lzma`` preset 6 instead of zlib (stdlib, slower);

and the compress and decompress CPU per sample. It also prints the floor the float32 rates
set alone. Not a test; single process, seconds.

Run: .venv/bin/python bench/store_codecs.py --nodes 20
"""

from __future__ import annotations

import argparse
import itertools
import lzma
import random
import sys
import time
import zlib
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store_size import T0, Node
from collector.store.codec import TYPECODES, Columns, _deltas, _packed, _shuffle

SECONDS = 3600  # one consolidated raw chunk: a node-hour at 1 Hz
GIB_PER_1000_NODE_DAYS = 86_400 * 1000 / 2**30  # bytes per sample -> GiB per 1,000 node-days


def zigzag(column: array[int]) -> bytes:
    """Deltas of an integer column, zigzag-mapped (small magnitudes, either sign, to small codes), shuffled."""
    width = column.itemsize
    mask = (1 << (8 * width)) - 1
    deltas = [column[0]] + [b - a for a, b in itertools.pairwise(column)]
    return _shuffle(array(column.typecode, [((d << 1) ^ (d >> 63)) & mask for d in deltas]).tobytes(), width)


def columns_of(cols: Columns, ints: Callable[[array[int]], bytes]) -> list[bytes]:
    """Every column's bytes: seq and time deltas, integer series through ``ints``, float32 series shuffled."""
    parts = [_packed(_deltas(cols.seq)), _packed(_deltas(cols.at_us))]
    parts += [_packed(c) if code == "f" else ints(c) for code, c in zip(TYPECODES, cols.series, strict=True)]
    return parts


def zlib_6(data: bytes) -> bytes:
    """The store's level for consolidated chunks."""
    return zlib.compress(data, 6)


def lzma_6(data: bytes) -> bytes:
    """lzma's default preset."""
    return lzma.compress(data, preset=6)


def main(argv: Sequence[str] | None = None) -> int:
    """Simulate ``--nodes`` node-hours and print the table."""
    parser = argparse.ArgumentParser(description="Candidate raw-chunk encodings of the store, measured.")
    parser.add_argument("--nodes", type=int, default=20, help="simulated node-hours (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    sizes: dict[str, int] = {}
    cpu: dict[str, float] = {}
    per_column = [0] * (2 + len(TYPECODES))
    for _ in range(args.nodes):
        sim = Node(rng)
        rows = [(t + 1, T0 + t + rng.uniform(0, 0.002), sim.values()) for t in range(SECONDS)]
        cols = Columns.from_values([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        v1 = columns_of(cols, _packed)
        for i, part in enumerate(v1):
            per_column[i] += len(zlib.compress(part, 6))
        for name, parts in (("v1", v1), ("zigzag", columns_of(cols, zigzag))):
            data = b"".join(parts)
            for method, pack, unpack in (("zlib 6", zlib_6, zlib.decompress), ("lzma 6", lzma_6, lzma.decompress)):
                key = f"{name} + {method}"
                started = time.perf_counter()
                blob = pack(data)
                packed_at = time.perf_counter()
                unpack(blob)
                cpu[key + " pack"] = cpu.get(key + " pack", 0.0) + packed_at - started
                cpu[key + " unpack"] = cpu.get(key + " unpack", 0.0) + time.perf_counter() - packed_at
                sizes[key] = sizes.get(key, 0) + len(blob)
    n = args.nodes * SECONDS
    print(f"{args.nodes} simulated node-hours at 1 Hz ({n:,} samples), rates log-normal white noise\n")
    print("| encoding | bytes per sample | GiB per 1,000 node-days | pack µs/sample | unpack µs/sample |")
    print("|---|---:|---:|---:|---:|")
    for key, total in sizes.items():
        print(
            f"| {key} | {total / n:.2f} | {total / n * GIB_PER_1000_NODE_DAYS:.3f} | "
            f"{cpu[key + ' pack'] / n * 1e6:.2f} | {cpu[key + ' unpack'] / n * 1e6:.2f} |"
        )
    names = ["seq", "sampled_at", "cpu", "mem", "load_1", "net_rx", "net_tx", "disk_read", "disk_write"]
    print("\n| column (v1, zlib 6) | bytes per sample |\n|---|---:|")
    for name, total in zip(names, per_column, strict=True):
        print(f"| {name} | {total / n:.2f} |")
    rates = sum(per_column[5:])
    print(f"\nthe four float32 rates alone: {rates / n:.2f} B/sample = {rates / n * GIB_PER_1000_NODE_DAYS:.3f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
