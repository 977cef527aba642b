"""Benchmark: alert rule evaluation per heartbeat at fleet scale (10,000 nodes x 20 rules by default).

Feeds ``AlertEngine.observe`` one heartbeat per node per round, in-process, and
reports microseconds per heartbeat as the median of ``--runs`` runs, side by side
with a no-rules baseline (an engine with no rules at all: the cost of the call and
the loop over the values) and the built-in rules alone (the default config, as
bench/e2e.py runs). Also times the shell's share, ``Flattener`` (heartbeat -> flat
metric map), for the same rule sets. The last set skews every clock 3 s, so every
node has a live (pending) alert, the case that used to judge every key. Heartbeats
are seeded-random and realistic: most nodes idle, about 2 % past some threshold each
round, so the slow path (pending, firing, resolved) is exercised too.

Not a test and not an end-to-end figure: no sockets, no decoding, no store.

Run: .venv/bin/python bench/alerts_eval.py --nodes 10000 --runs 5
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stats import median
from collector.alerts.engine import AlertEngine
from collector.alerts.rules import Rule, parse_rules
from collector.alerts.samples import Flattener
from shared.messages import Heartbeat

WALL = 1_800_000_000.0
VARIANTS = 256  # distinct heartbeats per round, dealt to nodes round-robin
# 15 user rules on top of the 5 built-ins (3 of them metric rules): 20 rules, 18 metrics watched.
USER_RULES = [
    ("cpu_high", "cpu_percent > 90", 80),
    ("mem_high", "mem_percent > 90", 85),
    ("swap_high", "swap_percent > 50", 40),
    ("load_high", "load1_per_core > 2", 1.5),
    ("core_pegged", "cpu_max_core_percent > 99", 95),
    ("too_many_processes", "process_count > 5000", 4000),
    ("disk_critical", "disk_fullness_percent >= 97", 95),
    ("net_rx_high", "net_rx_bytes_per_s > 1e9", 5e8),
    ("net_tx_high", "net_tx_bytes_per_s > 1e9", 5e8),
    ("disk_read_high", "disk_read_bytes_per_s > 5e8", 2e8),
    ("disk_write_high", "disk_write_bytes_per_s > 5e8", 2e8),
    ("hot", "temperature_celsius > 90", 80),
    ("load5_high", "load5 > 64", 48),
    ("load15_high", "load15 > 64", 48),
    ("mem_low", "mem_available_bytes < 200000000", 400000000),
]


def twenty_rules() -> tuple[Rule, ...]:
    """The built-ins plus ``USER_RULES``, each with a 1-minute ``for``."""
    tables = [{"name": n, "condition": c, "for": "1m", "clear_threshold": ct} for n, c, ct in USER_RULES]
    return parse_rules({"rule": tables})


def make_heartbeats(rng: random.Random, count: int, seq: int) -> list[Heartbeat]:
    """``count`` plausible heartbeats; about 2 % breach some rule."""
    beats = []
    for _ in range(count):
        hot = rng.random() < 0.02
        cpu = rng.uniform(91, 100) if hot else rng.uniform(0, 60)
        full = 10**11 * (rng.uniform(0.9, 0.99) if hot else rng.uniform(0.1, 0.8))
        beats.append(
            Heartbeat(
                seq=seq,
                sampled_at=WALL + seq,
                cpu_percent=cpu,
                cpu_per_core_percent=[cpu] * 8,
                load_avg=[rng.uniform(0, 4), 1.0, 1.0],
                mem_used_bytes=2**33,
                mem_available_bytes=2**33,
                mem_percent=rng.uniform(20, 95 if hot else 80),
                swap_total_bytes=2**31,
                swap_used_bytes=0,
                swap_percent=0.0,
                disks={"/": [10**11, int(full), 10**11 - int(full)], "/boot": [10**9, 10**8, 9 * 10**8]},
                disk_read_bytes_per_s=rng.uniform(0, 1e7),
                disk_write_bytes_per_s=rng.uniform(0, 1e7),
                net_rx_bytes_per_s=rng.uniform(0, 1e7),
                net_tx_bytes_per_s=rng.uniform(0, 1e7),
                process_count=rng.randint(100, 400),
                uptime_s=86400.0 + seq,
                temperatures={"cpu": rng.uniform(40, 70)},
                sample_errors=0,
                late_ticks=0,
            )
        )
    return beats


def one_run(rules: tuple[Rule, ...], nodes: int, rounds: int, seed: int, skew_s: float = 0.01) -> tuple[float, float]:
    """(engine us per heartbeat, flattener us per heartbeat) for one fresh engine over ``rounds`` rounds.

    ``skew_s``, every node's clock skew: past 2 s the built-in clock_skew rule holds, so every node
    has a live (pending) alert and its other keys must still be looked at.
    """
    rng = random.Random(seed)
    engine = AlertEngine(rules)
    flatten = Flattener(engine.watched_metrics)
    node_ids = [f"node-{i:05d}" for i in range(nodes)]
    labels = [{"role": "web" if i % 2 else "db"} for i in range(nodes)]
    engine_s = flatten_s = 0.0
    for round_no in range(rounds + 1):  # round 0 warms the per-key plans, as a running collector has
        beats = make_heartbeats(rng, VARIANTS, round_no + 1)
        started = time.perf_counter()
        flat = [flatten(b, cpu_count=8, clock_skew_s=skew_s, dropped_samples=0, missing_samples=0) for b in beats]
        flatten_s += (time.perf_counter() - started) * (0 if round_no == 0 else nodes / VARIANTS)
        now = WALL + 20.0 * round_no  # 20 s apart: rules with a 1-minute `for` fire during the run
        observe = engine.observe
        started = time.perf_counter()
        for i, node_id in enumerate(node_ids):
            observe(node_id, labels[i], flat[i % VARIANTS], now)
        if round_no:
            engine_s += time.perf_counter() - started
    per = nodes * rounds
    return engine_s / per * 1e6, flatten_s / per * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Print a markdown table of medians, and the command that produced it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="heartbeats per node per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.rounds < 1 or args.runs < 1:
        parser.error("--nodes, --rounds and --runs: expected positive integers")
    builtins, twenty = parse_rules({}), twenty_rules()
    rule_sets = {
        "no rules (baseline)": ((), 0.01),
        # The default config (bench/e2e.py runs with it): 3 metric rules, 6 flat keys a heartbeat.
        f"{len(builtins)} built-in rules": (builtins, 0.01),
        f"{len(twenty)} rules": (twenty, 0.01),
        f"{len(twenty)} rules, every clock 3 s off (a live alert per node)": (twenty, 3.0),
    }
    print(f"command: {' '.join(['.venv/bin/python', 'bench/alerts_eval.py', *(argv or sys.argv[1:])])}")
    print(f"{args.nodes} nodes, {args.rounds} heartbeats each per run, median of {args.runs} runs\n")
    print("| rules | engine.observe, us/heartbeat | Flattener, us/heartbeat | both, us/heartbeat |")
    print("| --- | ---: | ---: | ---: |")
    for name, (rules, skew_s) in rule_sets.items():
        runs = [one_run(rules, args.nodes, args.rounds, args.seed + run, skew_s) for run in range(args.runs)]
        engine_us = median(r[0] for r in runs)
        flatten_us = median(r[1] for r in runs)
        both_us = median(r[0] + r[1] for r in runs)
        print(f"| {name} | {engine_us:.2f} | {flatten_us:.2f} | {both_us:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
