"""Sample sources for the store's size benches: which data a row was measured on is part of the row.

Three sources, each a ``Source`` giving one node's 1-Hz ``(seq, sampled_at, values)`` rows, with the
seven stored series in ``collector.history.SERIES`` order:

- ``white``: the earlier bench's nodes. CPU a random walk in hundredths, rates log-normal white
  noise at full float64 precision, time with microsecond jitter. No agent sends this: its low
  digits are noise no codec can pack, so it is the worst case, kept to compare with old figures.
- ``fleet``: simulated nodes that behave like real ones, at the wire's resolution (the agent rounds
  percents to 0.1, load to 0.01, rates to 0.1 and ``sampled_at`` to the millisecond,
  ``agent/heartbeat.py``). Mostly idle cores with bursts; memory drifting slowly; load_1 as
  Linux computes it (an exponential average of the run queue, updated every 5 s); network rates
  from monotonic byte counters (packets of real sizes, bursty transfers) over a jittered interval;
  disks idle but for writeback every 5 s and occasional reads, in 4-KiB blocks; some nodes (containers)
  report no disk I/O at all.
- ``recorded``: a real agent's samples of this host (``bench/store_record.py``), replayed once
  as one node.

Not a load generator: rows only, no network.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

Row = tuple[int, float, tuple[float | None, ...]]
Source = Callable[[random.Random, float, int], Iterator[Row]]
# Linux updates the load average every 5 s: load = load * e^(-5/60) + running * (1 - e^(-5/60))
# (kernel/sched/loadavg.c, EXP_1).
LOAD_EVERY_S = 5
LOAD_DECAY = math.exp(-5 / 60)


def white(rng: random.Random, t0: float, seconds: int) -> Iterator[Row]:
    """The earlier bench's node: every value noisy to its last bit (the worst case)."""
    cpu, mem, load = rng.uniform(2, 60), rng.uniform(20, 80), rng.uniform(0.1, 4)
    scale = 10 ** rng.uniform(3, 6)  # bytes/s scale of this node's traffic
    for t in range(seconds):
        cpu = min(100.0, max(0.0, cpu + rng.gauss(0, 3)))
        mem = min(100.0, max(0.0, mem + rng.gauss(0, 0.05)))
        load = max(0.0, load + rng.gauss(0, 0.05))
        rates = [scale * math.exp(rng.gauss(0, 1)) for _ in range(4)]
        rates[2] = 0.0 if rng.random() < 0.7 else rates[2]  # disks are often idle
        yield t + 1, t0 + t + rng.uniform(0, 0.002), (round(cpu, 2), round(mem, 2), round(load, 2), *rates)


class _Link:
    """A byte counter fed by background packets and now and then a transfer: bytes in the last interval."""

    def __init__(self, rng: random.Random, packets_per_s: float) -> None:
        self.rng, self.packets_per_s = rng, packets_per_s
        self.burst_left_s, self.burst_bytes_per_s = 0, 0.0

    def bytes_in(self, dt_s: float) -> int:
        rng = self.rng
        if self.burst_left_s <= 0 and rng.random() < 0.002:  # a transfer about every 8 minutes
            self.burst_left_s = rng.randint(3, 90)
            self.burst_bytes_per_s = 10 ** rng.uniform(5, 8)
        packets = max(0, round(rng.gauss(self.packets_per_s * dt_s, math.sqrt(self.packets_per_s * dt_s))))
        # Most packets are ACK-sized or full frames (IMIX-like), a few in between.
        # Sizes drawn for up to 8 packets, scaled to the count: the bench makes millions of samples.
        total = sum(rng.choice((66, 66, 66, 590, 1514, 1514)) for _ in range(min(packets, 8)))
        total = total * packets // 8 if packets > 8 else total
        if self.burst_left_s > 0:
            self.burst_left_s -= 1
            total += round(self.burst_bytes_per_s * dt_s * rng.uniform(0.7, 1.0)) // 1514 * 1514
        return total


def fleet(rng: random.Random, t0: float, seconds: int) -> Iterator[Row]:
    """A node of a realistic fleet: 70 % idle, 20 % moderately busy servers, 10 % batch nodes."""
    kind = rng.choices(("idle", "server", "batch"), (0.7, 0.2, 0.1))[0]
    base = {"idle": rng.uniform(0.5, 4), "server": rng.uniform(10, 40), "batch": rng.uniform(60, 95)}[kind]
    cores = rng.choice((2, 4, 8, 16, 32, 64))
    mem = rng.uniform(10, 70)
    load = base / 100 * cores
    busy_left = 0
    rx = _Link(rng, {"idle": 3, "server": 300, "batch": 30}[kind] * rng.uniform(0.3, 3))
    tx = _Link(rng, rx.packets_per_s * rng.uniform(0.5, 1.5))
    has_disks = rng.random() > 0.1  # containers see no block devices
    delay_s = rng.uniform(0.0002, 0.003)  # this host's usual wake-up lateness
    cpu = base
    for t in range(seconds):
        if busy_left <= 0 and rng.random() < 0.003:  # a cron job, a deploy, a GC storm
            busy_left = rng.randint(5, 120)
        busy_left -= 1
        target = min(100.0, base + (rng.uniform(30, 90) if busy_left > 0 else 0))
        cpu = min(100.0, max(0.0, target + rng.gauss(0, 0.3 + target * 0.05)))
        mem = min(100.0, max(1.0, mem + rng.gauss(0, 0.003) + (rng.gauss(0, 2) if rng.random() < 0.001 else 0)))
        if t % LOAD_EVERY_S == 0:
            running = round(rng.gauss(cpu / 100 * cores, math.sqrt(cores) / 4))
            load = load * LOAD_DECAY + max(0, running) * (1 - LOAD_DECAY)
        dt_s = 1.0 + rng.gauss(0, 0.0007)  # the monotonic interval the rates divide by
        disk_read = disk_write = None
        if has_disks:
            write_blocks = rng.randint(1, 40) if t % 5 == 0 else 0  # dirty_writeback_centisecs = 500
            read_blocks = rng.randint(1, 300) if rng.random() < 0.02 else 0
            if busy_left > 0:
                read_blocks += rng.randint(0, 500)
            disk_read, disk_write = round(read_blocks * 4096 / dt_s, 1), round(write_blocks * 4096 / dt_s, 1)
        late = delay_s + rng.expovariate(1 / 0.0005)
        yield t + 1, round(t0 + t + late, 3), (
            round(cpu, 1), round(mem, 1), round(load, 2),
            round(rx.bytes_in(dt_s) / dt_s, 1), round(tx.bytes_in(dt_s) / dt_s, 1), disk_read, disk_write,
        )  # fmt: skip


def recorded(path: Path) -> list[Row]:
    """A recording by ``bench/store_record.py``: one JSON line per sample."""
    rows: list[Row] = []
    with path.open(encoding="ascii") as f:
        for line in f:
            seq, at, values = json.loads(line)
            rows.append((seq, at, tuple(values)))
    return rows


def replayed(rows: list[Row]) -> Source:
    """The recording as one node, its times moved to start at ``t0``: at most ``len(rows)`` samples, never looped.

    (A looped recording would repeat itself inside a chunk, and compress better than any real node.)
    """

    def source(rng: random.Random, t0: float, seconds: int) -> Iterator[Row]:
        first_at = rows[0][1] // 1
        for seq, at, values in rows[:seconds]:
            yield seq, round(t0 + at - first_at, 3), values

    return source


SOURCES: dict[str, Source] = {"white": white, "fleet": fleet}
