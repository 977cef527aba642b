"""Benchmark: what viewers cost the collector, 2,000 simulated nodes and 0/10/50 msgpack or 10 JSON subscribers.

For each row it starts a fresh ``nodewatch collector`` subprocess (``--ephemeral``) from
``--repo`` (default: this checkout; pass a ``git worktree`` of an older commit for an A/B),
``bench/fleet.py`` with ``--nodes`` simulated agents at 1 Hz, one measuring msgpack subscriber
(this process: the sample's ``sampled_at`` to its arrival, as ``bench/e2e.py``) and the row's
extra subscribers in one helper process (they read every frame and decode nothing). After the
connect storm and a settle time it measures a steady window (``bench.e2e._steady``): collector
CPU % and µs per heartbeat (robust to noise on a shared machine), e2e p99 and health p99
(a prober in its own process), event-loop lag. Rows run in turn in one invocation, so a table is
side by side.

Run: flock /work/notes/bench.lock timeout 900 .venv/bin/python bench/fanout.py --steady-s 15 [--compare DIR]

``--join-loaded`` instead joins one subscriber to a collector already loaded with ``--nodes``
nodes, and that subscriber decodes every frame with ``shared.codec.decode`` (as the viewer does),
paced to ``--entries-per-s`` (default 10,000: the PyQt viewer's rate at 10,000 nodes), for
``--steady-s``: it reports whether it was cut (4429), what it received, how far behind each
node it ended, and the collector's ``fanout`` counters.

``--compare DIR`` runs each row against DIR's collector too, right before this checkout's, so
the table is an A/B from one run (make DIR with ``git worktree add --detach DIR COMMIT``).

Not a test: it measures. Loopback only; every phase has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench._stats import percentile
from bench.e2e import Subscriber, _connect_storm, _get_json, _steady, _stop
from nodewatch.simulate import raise_nofile_limit
from shared.codec import COLLECTOR_LIMITS, decode

REPO = Path(__file__).resolve().parents[1]
# (label, extra subscribers, their format): the rows of issue 13's finding 12a.
ROWS = (("0", 0, "msgpack"), ("10 msgpack", 10, "msgpack"), ("50 msgpack", 50, "msgpack"), ("10 JSON", 10, "json"))
STORM_BUDGET_S = 60.0  # 2,000 agents connect in a few seconds here; past this the row is noted


@dataclass
class Row:
    """One line of the table."""

    label: str
    code: str  # which checkout ran the collector: "this" or --compare's
    readers_ok: int
    cpu_percent: float
    cpu_us_per_heartbeat: float
    ingest_per_s: float
    e2e_p99_ms: float
    health_p99_ms: float
    lag_max_ms: float
    note: str


async def _readers(url: str, count: int) -> None:
    """The helper process: ``count`` subscribers that read every frame; prints ``ready N`` once all are in."""
    async with aiohttp.ClientSession() as session:
        ready = 0
        sockets = []
        for _ in range(count):
            with contextlib.suppress(aiohttp.ClientError, OSError):
                sockets.append(await session.ws_connect(url, max_msg_size=0, compress=0))
                ready += 1
        print(f"ready {ready}", flush=True)

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for _msg in ws:
                pass

        await asyncio.gather(*(drain(ws) for ws in sockets), return_exceptions=True)


async def _start_collector(repo: Path) -> tuple[asyncio.subprocess.Process, str]:
    collector = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nodewatch", "collector", "--bind", "127.0.0.1:0", "--log-level", "WARNING",
        "--ephemeral", stdout=asyncio.subprocess.PIPE, cwd=repo,
    )  # fmt: skip
    assert collector.stdout is not None
    async with asyncio.timeout(30):
        line = (await collector.stdout.readline()).decode()
    return collector, line.split()[4]


async def run_row(  # noqa: PLR0917 - one call site, every argument named
    repo: Path, label: str, extra: int, fmt: str, nodes: int, settle_s: float, steady_s: float
) -> Row:
    """One row against a fresh collector."""
    collector, base = await _start_collector(repo)
    ws_base = base.replace("http", "ws", 1) + "/api/v1/subscribe"
    fleet: asyncio.subprocess.Process | None = None
    readers: asyncio.subprocess.Process | None = None
    sub = Subscriber()
    watcher = asyncio.create_task(sub.run(base + "/api/v1/subscribe"))
    notes: list[str] = []
    ready = 0
    try:
        if extra:
            url = ws_base + ("?format=json" if fmt == "json" else "")
            readers = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--readers-url", url, "--readers", str(extra),
                stdout=asyncio.subprocess.PIPE, cwd=REPO,
            )  # fmt: skip
            assert readers.stdout is not None
            async with asyncio.timeout(30):
                ready = int((await readers.stdout.readline()).decode().split()[1])
        fleet = await asyncio.create_subprocess_exec(
            sys.executable, str(REPO / "bench" / "fleet.py"), "--collector", base, "--nodes", str(nodes),
            "--interval", "1", "--duration", str(STORM_BUDGET_S + settle_s + steady_s + 10), "--no-dying",
            "--prefix", "fan", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        async with aiohttp.ClientSession() as session:
            health_url = base + "/api/v1/health"
            connected = await _connect_storm(session, health_url, nodes, STORM_BUDGET_S)
            if connected < nodes:
                notes.append(f"only {connected} of {nodes} connected")
            await asyncio.sleep(settle_s)
            steady = await _steady(session, health_url, collector.pid, fleet.pid, sub, steady_s)
            final = await _get_json(session, health_url)
        if final.get("subscribers", 0) < extra + 1:
            notes.append(f"{final.get('subscribers')} subscribers left at the end")
        return Row(
            label=label,
            code=repo.name,
            readers_ok=ready,
            cpu_percent=round(steady.cpu_percent, 1),
            cpu_us_per_heartbeat=round(steady.cpu_us_per_heartbeat, 1),
            ingest_per_s=round(steady.ingest_per_s),
            e2e_p99_ms=round(percentile(sub.latencies_ms["steady"], 0.99), 1),
            health_p99_ms=round(percentile(steady.health_ms, 0.99), 2),
            lag_max_ms=steady.lag_max_ms,
            note="; ".join(notes),
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await watcher
        if readers is not None and readers.returncode is None:
            readers.kill()
            await readers.wait()
        await _stop(fleet)
        await _stop(collector)


@dataclass
class JoinRow:
    """What one decoding subscriber joining a loaded collector saw."""

    code: str
    close: str  # "open" at the end, or the close code and reason
    frames: int
    entries: int
    decode_s: float
    seq_behind_p99: float  # at the end: the fleet's newest seq minus the one it holds, per node
    fanout: dict[str, int]


async def join_loaded(repo: Path, nodes: int, settle_s: float, steady_s: float, entries_per_s: float) -> JoinRow:
    """Load a fresh collector with ``nodes``, then join one subscriber taking ``entries_per_s`` for ``steady_s``."""
    collector, base = await _start_collector(repo)
    fleet = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bench" / "fleet.py"), "--collector", base, "--nodes", str(nodes),
        "--interval", "1", "--duration", str(STORM_BUDGET_S + settle_s + steady_s + 30), "--no-dying",
        "--prefix", "join", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    seqs: dict[str, int] = {}
    frames = entries = 0
    decode_s = 0.0
    close = "open"
    try:
        async with aiohttp.ClientSession() as session:
            health_url = base + "/api/v1/health"
            await _connect_storm(session, health_url, nodes, STORM_BUDGET_S)
            await asyncio.sleep(settle_s)
            url = base.replace("http", "ws", 1) + "/api/v1/subscribe"
            async with session.ws_connect(url, max_msg_size=0, compress=0) as ws:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(steady_s):
                        async for msg in ws:
                            started = time.perf_counter()
                            message = decode(msg.data, COLLECTOR_LIMITS)
                            frames += 1
                            for entry in getattr(message, "nodes", ()):
                                entries += 1
                                seqs[entry.status.node_id] = entry.status.last_seq or 0
                            took_s = time.perf_counter() - started
                            decode_s += took_s
                            # The viewer also applies each entry to its model: pace to its measured rate.
                            await asyncio.sleep(max(0.0, len(getattr(message, "nodes", ())) / entries_per_s - took_s))
                        close = f"{ws.close_code}"
                final = await _get_json(session, health_url)  # before it closes: its counters as it ends
            newest = await _get_json(session, base + "/api/v1/nodes")  # closed first: it stopped reading
    finally:
        await _stop(fleet)
        await _stop(collector)
    statuses = [row.get("status", row) for row in newest["nodes"]]
    behind = sorted(max(0, (st.get("last_seq") or 0) - seqs.get(st["node_id"], 0)) for st in statuses)
    return JoinRow(
        code=repo.name,
        close=close,
        frames=frames,
        entries=entries,
        decode_s=round(decode_s, 1),
        seq_behind_p99=percentile([float(b) for b in behind], 0.99) if behind else -1.0,
        fanout={k: v for k, v in final.get("fanout", {}).items() if isinstance(v, int)},
    )


def table(rows: Sequence[Row]) -> str:
    """The markdown table."""
    lines = [
        "| extra subscribers | code | collector CPU % | CPU µs/heartbeat | ingest hb/s | e2e p99 ms | health p99 ms | "
        "loop lag max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.code} | {r.cpu_percent:.0f} | {r.cpu_us_per_heartbeat:.1f} | {r.ingest_per_s:,.0f} | "
            f"{r.e2e_p99_ms:.1f} | {r.health_p99_ms:.2f} | {r.lag_max_ms:.0f} |"
        )
    lines.extend(f"note ({r.label}): {r.note}" for r in rows if r.note)
    return "\n".join(lines)


async def bench(repos: Sequence[Path], nodes: int, settle_s: float, steady_s: float, only: Sequence[str]) -> None:
    """Every row in turn, each for every checkout in ``repos`` one after the other; print the table."""
    rows = []
    for label, extra, fmt in ROWS:
        if only and label not in only:
            continue
        for repo in repos:
            print(f"fanout: {nodes:,} nodes, {label}, {repo} ...", file=sys.stderr, flush=True)
            row = await run_row(repo, label, extra, fmt, nodes, settle_s, steady_s)
            print(f"fanout: {row}", file=sys.stderr, flush=True)
            rows.append(row)
    names = ", ".join(f"{repo.name} = {repo}" for repo in repos)
    print(f"\nnodewatch fan-out, {nodes:,} nodes at 1 Hz, {os.cpu_count()} CPUs, {steady_s:g} s steady; {names}\n")
    print(table(rows))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options and run the benchmark (or, with --readers-url, be the readers' helper process)."""
    parser = argparse.ArgumentParser(description="What subscribers cost the collector, side by side.")
    parser.add_argument("--nodes", type=int, default=2000, help="simulated nodes (default 2000)")
    parser.add_argument("--settle-s", type=float, default=5.0, help="seconds after the connect storm (default 5)")
    parser.add_argument("--steady-s", type=float, default=15.0, help="seconds measured per row (default 15)")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose collector runs (default: this one)")
    parser.add_argument("--only", default="", help="comma-separated row labels to run (default: all)")
    parser.add_argument(
        "--compare", type=Path, metavar="DIR", help="also run each row against DIR's collector (a git worktree)"
    )
    parser.add_argument("--join-loaded", action="store_true", help="one decoding subscriber joins a loaded collector")
    parser.add_argument(
        "--entries-per-s", type=float, default=10_000.0, help="--join-loaded: the subscriber's pace (the viewer's)"
    )
    parser.add_argument("--readers-url", help=argparse.SUPPRESS)
    parser.add_argument("--readers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.readers_url:
        asyncio.run(_readers(args.readers_url, args.readers))
        return 0
    if not 1 <= args.nodes <= 20_000:
        parser.error(f"--nodes: expected 1-20000, got {args.nodes!r}")
    if not 5 <= args.steady_s <= 600:
        parser.error(f"--steady-s: expected 5-600 seconds, got {args.steady_s}")
    raise_nofile_limit()
    only = [label.strip() for label in args.only.split(",") if label.strip()]
    repos = [args.repo.resolve()] if args.compare is None else [args.compare.resolve(), args.repo.resolve()]
    if args.join_loaded:
        for repo in repos:
            row = asyncio.run(join_loaded(repo, args.nodes, args.settle_s, args.steady_s, args.entries_per_s))
            print(row, flush=True)
        return 0
    asyncio.run(bench(repos, args.nodes, args.settle_s, args.steady_s, only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
