"""Benchmark: raw-chunk encodings of the store side by side, on white noise, a realistic fleet and this host.

Each data set (``bench/_store_data.py`` says what each one is) is cut into node-hours at 1 Hz,
one consolidated raw chunk each, as the store keeps them; every encoding packs the same chunks:

- ``v1``: the previous format (seq and time deltas, the value columns as they are; byte
  shuffle; zlib 6), which partials still use;
- ``v2``: the shipped format (``collector/store/codec_v2.py``: rates as tenths when exact, deltas
  or deltas of deltas, gcd, offset, narrowest width; byte shuffle) with zlib 1, 6 (shipped), 9
  or lzma 6.

Every decode is checked against its input (exact, bit for bit where stored). Sizes are per sample
(seq, time and seven values) and per value (divided by the seven series, as Netdata's "bytes per
value" is). Pack and unpack are process CPU µs per sample, the best of ``--repeat`` runs (the
machine is shared). A recording is cut into its hours, never looped (a loop would repeat inside a
chunk and pack better than any real node). Per column it also prints what each column takes when compressed alone.

Single process, seconds. Not a test.

Run: .venv/bin/python bench/store_codecs.py --nodes 20 [--recorded bench/results/heartbeats-this-host.jsonl]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _store_data as data
from collector.history import SERIES
from collector.store import codec_v2
from collector.store.codec import FORMAT_VERSION, MISSING, Columns, decode_raw, encode_raw
from collector.store.codec_v2 import LZMA, RAW_VERSION, deltas, packed

SECONDS = 3600  # one consolidated raw chunk: a node-hour at 1 Hz
T0 = 1_800_000_000.0 // 86400 * 86400
GIB_PER_1000_NODE_DAYS = 86_400 * 1000 / 2**30  # bytes per sample -> GiB per 1,000 node-days
COLUMNS = ("seq", "sampled_at", *SERIES)
Encoding = Callable[[Columns], bytes]
ENCODINGS: dict[str, Encoding] = {
    "v1, zlib 6 (before)": lambda c: encode_raw(c, 6, version=FORMAT_VERSION),
    "v2, zlib 1": lambda c: encode_raw(c, 1, version=RAW_VERSION),
    "v2, zlib 6 (shipped)": lambda c: encode_raw(c, 6, version=RAW_VERSION),
    "v2, zlib 9": lambda c: encode_raw(c, 9, version=RAW_VERSION),
    "v2, lzma 6": lambda c: encode_raw(c, 6, version=RAW_VERSION, compressor=LZMA),
}


def chunks_of(source: data.Source, nodes: int, seed: int) -> list[Columns]:
    """``nodes`` node-hours of ``source``, as stored columns."""
    rng = random.Random(seed)
    out = []
    for _ in range(nodes):
        rows = list(source(rng, T0, SECONDS))
        out.append(Columns.from_values([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))
    return out


def cpu_s(fn: Callable[[], object], repeat: int) -> float:
    """The least process CPU time of ``repeat`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def measure(chunks: list[Columns], repeat: int) -> dict[str, tuple[int, float, float]]:
    """Per encoding: total bytes, pack and unpack CPU seconds; every decode checked against its input."""
    out = {}
    for name, encode in ENCODINGS.items():
        blobs = [encode(c) for c in chunks]
        for blob, cols in zip(blobs, chunks, strict=True):
            if decode_raw(blob).points() != cols.points():
                raise RuntimeError(f"{name}: a chunk did not read back as written")
        pack = cpu_s(lambda: [encode(c) for c in chunks], repeat)  # noqa: B023 - called at once
        unpack = cpu_s(lambda: [decode_raw(b) for b in blobs], repeat)  # noqa: B023 - called at once
        out[name] = (sum(map(len, blobs)), pack, unpack)
    return out


def per_column(chunks: list[Columns]) -> tuple[list[int], list[int]]:
    """Bytes of each column compressed alone (zlib 6): v1's part and v2's part."""
    v1, v2 = [0] * len(COLUMNS), [0] * len(COLUMNS)
    for cols in chunks:
        columns = [cols.seq, cols.at_us, *cols.series]
        v1_parts = [packed(deltas(cols.seq)), packed(deltas(cols.at_us)), *map(packed, cols.series)]
        orders = [range(1, 3), range(1, 3), *[range(2)] * len(SERIES)]
        for i, (column, missing, order) in enumerate(zip(columns, (None, None, *MISSING), orders, strict=True)):
            v1[i] += len(zlib.compress(v1_parts[i], 6))
            v2[i] += len(zlib.compress(codec_v2.encode_column(column, missing, order), 6))
    return v1, v2


def main(argv: Sequence[str] | None = None) -> int:
    """Build the data sets and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20, help="simulated node-hours per data set (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="timing runs, the best kept")
    parser.add_argument("--recorded", type=Path, default=None, help="a bench/store_record.py recording")
    args = parser.parse_args(argv)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    sets = {
        "white": ("white noise (the earlier bench's data)", chunks_of(data.white, args.nodes, args.seed)),
        "fleet": ("realistic simulated fleet", chunks_of(data.fleet, args.nodes, args.seed)),
    }
    if args.recorded is not None:
        rows = data.recorded(args.recorded)
        hours = [rows[i : i + SECONDS] for i in range(0, len(rows), SECONDS)]
        chunks = [chunks_of(data.replayed(hour), 1, args.seed)[0] for hour in hours]
        sets["recorded"] = (f"this host's agent, {len(rows)} s recorded", chunks)
    print("| data | encoding | bytes per sample | bytes per value | GiB per 1,000 node-days | pack µs | unpack µs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    columns = {}
    for key, (label, chunks) in sets.items():
        n = sum(len(c) for c in chunks)
        for name, (size, pack, unpack) in measure(chunks, args.repeat).items():
            print(
                f"| {label} | {name} | {size / n:.2f} | {size / n / len(SERIES):.2f} | "
                f"{size / n * GIB_PER_1000_NODE_DAYS:.3f} | {pack / n * 1e6:.2f} | {unpack / n * 1e6:.2f} |"
            )
        columns[key] = (per_column(chunks), n)
    print("\nbytes per sample, each column compressed alone (zlib 6), v1 -> v2:\n")
    print(f"| column | {' | '.join(sets)} |\n|---|{'---:|' * len(sets)}")
    for i, name in enumerate(COLUMNS):
        cells = [f"{v1[i] / n:.2f} -> {v2[i] / n:.2f}" for (v1, v2), n in columns.values()]
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
