"""Recorder: this machine's real 1-Hz samples, as the agent builds them, for the store's size benches.

Runs the agent's own ``PsutilReader`` and ``HeartbeatBuilder`` on this host at ``--interval-s``,
validates each heartbeat as the collector would (``shared.messages.Heartbeat``), and appends the
seven stored series (``collector.history.point_values``) as one JSON line per sample:
``[seq, sampled_at, [cpu, mem, load_1, net_rx, net_tx, disk_read, disk_write]]``.
``bench/store_size.py --recorded FILE`` and ``bench/store_codecs.py --recorded FILE`` read it.

Not an agent: no network, no backlog, no slow readings (the store keeps only the fast fields).
Writes only ``--out`` (default under bench/results/, which git ignores).

Run: .venv/bin/python bench/store_record.py --seconds 3600
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.sampler import HeartbeatBuilder, PsutilReader
from agent.schedule import TickSchedule
from collector.history import point_values
from shared.messages import Heartbeat

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "heartbeats.jsonl"


def main(argv: Sequence[str] | None = None) -> int:
    """Sample until ``--seconds`` have passed, one JSON line per heartbeat."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    ps = importlib.import_module("psutil")
    reader = PsutilReader(ps, clock=time.monotonic, wall_clock=time.time)
    builder = HeartbeatBuilder()
    builder.prime(reader.read_fast())
    schedule = TickSchedule(time.monotonic(), args.interval_s)
    end = time.monotonic() + args.seconds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    seq = 0
    with args.out.open("w", encoding="ascii") as out:
        while (now := time.monotonic()) < end:
            if schedule.poll(now) is None:
                time.sleep(max(0.0, schedule.next_due - now))
                continue
            seq += 1
            heartbeat = Heartbeat.model_validate(builder.build(seq, reader.read_fast(), None))
            out.write(json.dumps([seq, heartbeat.sampled_at, list(point_values(heartbeat))]) + "\n")
            out.flush()
    print(f"{seq} samples in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
