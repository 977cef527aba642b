"""Benchmark: kill -9 the collector under a simulated fleet, restart it, and time the way back (issue 12).

One ``nodewatch collector`` with ``--data-dir`` in a fresh temporary dir, ``bench/fleet.py``
with ``--nodes`` simulated agents at 1 Hz, and ``--minutes`` of history pushed. Then:

1. every node's last seq is read, and the collector is killed with SIGKILL;
2. it is started again on the same port and data dir, and timed: until ``/api/v1/health``
   answers, until a subscriber's snapshot holds every node, and until the rings hold the
   recent window again (health's ``store.recent_loaded``: it is loaded after the start);
3. after ``--replay-s`` (the agents reconnect with backoff) the fleet stops, and every node's
   stored history is checked gap-free from seq 1 up to its last committed seq at the kill
   (read from the file before the restart: no ack could cover more): all nodes in one pass
   over the database file (a read-only ``SqliteReader`` beside the running collector, as WAL
   allows), and ``--api-nodes`` of them (spread over the fleet)
   through ``GET /api/v1/nodes/{id}/history`` (raw tier) as a viewer reads it. ``tail`` counts
   the samples sent before the kill but not committed: never acked (acks follow commits), so a
   real agent replays them; the simulator keeps no backlog, so it does not.

Why not every node through the API: a raw history query decodes every head batch in its range
(up to 240 commits of the whole fleet, docs/store.md), so 10,000 of them one after the other took
most of an hour (0.3 s each); that is what looked like a stall after the history phase at 5,000 and
10,000 nodes.

Prints a markdown table and writes it as JSON to bench/results/restart.json.

Run: .venv/bin/python bench/restart.py --nodes 10000 --minutes 15 [--api-nodes 50]

Not a test: it measures. Loopback only; every phase has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import msgpack

from bench._procs import ProcessGroup, gaps, get_json, last_seqs, store_flags
from bench._stats import percentile
from collector.store.policy import RetentionPolicy
from collector.store.sqlite_reader import SqliteReader

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "restart.json"
POLL_S = 0.02  # how often health is tried while the collector starts
SNAPSHOT_QUIET_S = 2.0  # no frame for this long after a snapshot part: the snapshot is complete
START_DEADLINE_S = 120.0
CONNECT_DEADLINE_S = 120.0  # then go on with the nodes that did connect, noted
SPREAD_ABOVE_NODES = 5000  # as bench/e2e.py: 127.0.0.x source addresses above this many nodes


@dataclass
class RestartResult:
    """The table's one row."""

    nodes: int
    minutes: float
    db_mib: float
    health_s: float  # from the restart's spawn to the first health answer
    snapshot_s: float  # from the spawn to a snapshot holding every node
    snapshot_nodes: int
    rings_s: float  # from the spawn until the recent window is back in every ring (health: recent_loaded)
    nodes_checked: int  # in the database file, every node
    nodes_with_gaps: int
    api_checked: int  # through the history API
    api_with_gaps: int
    check_s: float  # the one pass over the file
    restored_seq_min: int
    tail_p50: float  # samples sent before the kill, not committed (never acked)
    tail_max: int
    note: str


async def _until_health(session: aiohttp.ClientSession, base: str, deadline_s: float) -> float:
    """Seconds until /api/v1/health answers at all (200 or 503), polling from now."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            async with session.get(base + "/api/v1/health", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                await resp.read()
                if resp.status != 429:  # 429: this address holds too many unauthenticated sockets (the storm)
                    return time.monotonic() - started
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(POLL_S)
    raise RuntimeError(f"health did not answer within {deadline_s:g} s")


async def _snapshot_nodes(session: aiohttp.ClientSession, base: str) -> int:
    """How many nodes a fresh subscriber's whole snapshot lists (0 while the reconnect storm gets it a 429).

    The snapshot may come in parts (docs/protocol.md 4.2.1): the ``snapshot``, then ``update`` frames
    in which every entry carries ``history``; it is complete at the first frame that is not one.
    """
    try:
        async with session.ws_connect(base + "/api/v1/subscribe", max_msg_size=0) as ws:
            first: dict[str, Any] = msgpack.unpackb((await ws.receive(timeout=60)).data, raw=False)
            ids = {entry["status"]["node_id"] for entry in first.get("nodes", [])}
            while True:
                try:
                    msg = await ws.receive(timeout=SNAPSHOT_QUIET_S)
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                part: dict[str, Any] = msgpack.unpackb(msg.data, raw=False)
                entries = part.get("nodes", [])
                if part.get("type") != "update" or not entries or any("history" not in e for e in entries):
                    break
                ids.update(entry["status"]["node_id"] for entry in entries)
            return len(ids)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status != 429:
            raise
        return 0


async def _history_seqs(session: aiohttp.ClientSession, base: str, node_id: str, from_at: float) -> list[int]:
    """The stored raw seqs of one node since ``from_at``."""
    params = {"from": str(from_at), "to": str(time.time() + 5), "step": "0"}
    status, body = await get_json(session, f"{base}/api/v1/nodes/{node_id}/history?{_query(params)}")
    if status != 200 or body.get("tier") != "raw":
        raise RuntimeError(f"{node_id}: expected a raw history, got {status} {str(body)[:200]}")
    return [int(s) for s in body["seq"]]


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


async def _connected(session: aiohttp.ClientSession, base: str) -> int:
    """Health's ``agents_connected``; 0 while the connect storm keeps health from answering in time (or a 429)."""
    try:
        body = (await get_json(session, base + "/api/v1/health"))[1]
    except (aiohttp.ClientError, TimeoutError):
        return 0
    return int(body.get("agents_connected", 0)) if isinstance(body, dict) else 0


def _gap_free(seqs: Sequence[int], upto: int) -> bool:
    """Whether ``seqs`` (sorted) hold every seq from 1 up to ``upto``."""
    held = [s for s in seqs if s <= upto]
    return bool(held) and held[0] == 1 and not gaps(held)


def _stored_seqs(data_dir: Path, since_at: float) -> dict[str, list[int]]:
    """Every node's stored seqs since ``since_at``, in one pass over the database (read-only)."""
    reader = SqliteReader(data_dir / "nodewatch.db", RetentionPolicy())
    try:
        return {node_id: points.seq for node_id, points in reader.load_recent(since_at).items()}
    finally:
        reader.close()


def _durable_seqs(data_dir: Path) -> dict[str, int]:
    """Every node's highest committed seq, read from the file of the killed collector: what acks could cover."""
    reader = SqliteReader(data_dir / "nodewatch.db", RetentionPolicy())
    try:
        return {row.node_id: row.last_seq for row in reader.load_nodes()}
    finally:
        reader.close()


async def _time_restart(
    session: aiohttp.ClientSession, base: str, spawned: float, nodes: int, notes: list[str]
) -> tuple[float, float, float, int]:
    """Seconds from ``spawned`` until health answers, a snapshot holds every node, and the rings are refilled."""
    health_s = await _until_health(session, base, START_DEADLINE_S)
    seen = 0
    while (seen := await _snapshot_nodes(session, base)) < nodes:
        if time.monotonic() - spawned > START_DEADLINE_S:
            notes.append(f"the snapshot held {seen} of {nodes} nodes")
            break
        await asyncio.sleep(POLL_S)
    snapshot_s = time.monotonic() - spawned
    # .get: a 429 during the reconnect storm has no store block; poll again.
    while not (await get_json(session, base + "/api/v1/health"))[1].get("store", {}).get("recent_loaded"):
        if time.monotonic() - spawned > START_DEADLINE_S:
            notes.append("the recent window was not loaded in time")
            break
        await asyncio.sleep(0.1)
    return health_s, snapshot_s, time.monotonic() - spawned, seen


async def run(nodes: int, minutes: float, replay_s: float, api_nodes: int, workdir: Path) -> RestartResult:
    """The whole scenario against one data dir under ``workdir``."""
    group = ProcessGroup(workdir)
    notes: list[str] = []
    try:
        extra = ["--max-nodes", str(nodes + 100), "--log-level", "WARNING"]
        first = await asyncio.to_thread(group.collector, *extra)
        base = first.url
        started_at = time.time()
        fleet_args = ["--no-dying", "--prefix", "restart"] + (
            ["--spread-addresses"] if nodes > SPREAD_ABOVE_NODES else []
        )
        duration_s = minutes * 60 + CONNECT_DEADLINE_S + replay_s + START_DEADLINE_S
        fleet = group.fleet(base, nodes, 1.0, duration_s, *fleet_args)
        async with aiohttp.ClientSession() as session:
            connect_started = time.monotonic()
            while (connected := await _connected(session, base)) < nodes:
                if time.monotonic() - connect_started > CONNECT_DEADLINE_S:
                    notes.append(f"{connected} of {nodes} nodes connected within {CONNECT_DEADLINE_S:g} s")
                    break
                await asyncio.sleep(0.5)
            print(f"restart: {connected:,} nodes connected; pushing {minutes:g} min of history", file=sys.stderr)
            await asyncio.sleep(minutes * 60)
            held = await last_seqs(session, base)
            first.proc.kill()
            durable = await asyncio.to_thread(_durable_seqs, group.data_dir)
            db = group.data_dir / "nodewatch.db"
            db_mib = sum(p.stat().st_size for p in group.data_dir.glob("nodewatch.db*")) / 2**20 if db.exists() else 0.0
            argv = [sys.executable, "-m", "nodewatch", "collector", "--bind", f"127.0.0.1:{first.port}", *extra]
            group.spawn("collector", [*argv, *store_flags(group.data_dir)])
            spawned = time.monotonic()
            health_s, snapshot_s, rings_s, seen = await _time_restart(session, base, spawned, len(held), notes)
            restored = await last_seqs(session, base)
            await asyncio.sleep(replay_s)
            fleet.kill()
            check_started = time.monotonic()
            stored = await asyncio.to_thread(_stored_seqs, group.data_dir, started_at - 60)
            check_s = time.monotonic() - check_started
            with_gaps = sum(not _gap_free(stored.get(n, []), durable.get(n, 0)) for n in held)
            tails = [before - durable.get(node_id, 0) for node_id, before in held.items()]
            api_ids = sorted(held)[:: max(1, len(held) // max(1, api_nodes))][:api_nodes]
            api_gaps = 0
            for node_id in api_ids:
                seqs = await _history_seqs(session, base, node_id, started_at - 60)
                api_gaps += not _gap_free(seqs, durable.get(node_id, 0))
            restored_min = min(restored.values(), default=0)
    finally:
        group.close()
    return RestartResult(
        nodes=nodes,
        minutes=minutes,
        db_mib=round(db_mib, 1),
        health_s=round(health_s, 3),
        snapshot_s=round(snapshot_s, 3),
        snapshot_nodes=seen,
        rings_s=round(rings_s, 3),
        nodes_checked=len(held),
        nodes_with_gaps=with_gaps,
        api_checked=len(api_ids),
        api_with_gaps=api_gaps,
        check_s=round(check_s, 2),
        restored_seq_min=restored_min,
        tail_p50=percentile([float(t) for t in tails], 0.5),
        tail_max=max(tails, default=0),
        note="; ".join(notes),
    )


def table(r: RestartResult) -> str:
    """The markdown table."""
    return "\n".join(
        [
            "| nodes | history min | db MiB | health answers s | all nodes in snapshot s | rings refilled s | "
            "nodes checked (file) | with gaps | nodes checked (API) | with gaps | uncommitted tail p50 | tail max |",
            "|" + "---:|" * 12,
            f"| {r.nodes:,} | {r.minutes:g} | {r.db_mib:.1f} | {r.health_s:.2f} | {r.snapshot_s:.2f} | "
            f"{r.rings_s:.2f} | {r.nodes_checked:,} | {r.nodes_with_gaps} | {r.api_checked} | {r.api_with_gaps} | "
            f"{r.tail_p50:g} | {r.tail_max} |",
            *([f"note: {r.note}"] if r.note else []),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options and run the benchmark."""
    parser = argparse.ArgumentParser(description="kill -9 and restart of a collector with a durable store.")
    parser.add_argument("--nodes", type=int, default=10_000, help="simulated nodes at 1 Hz (default 10000)")
    parser.add_argument("--minutes", type=float, default=15.0, help="history pushed before the kill (default 15)")
    parser.add_argument("--replay-s", type=float, default=10.0, help="seconds the fleet runs after the restart")
    parser.add_argument("--api-nodes", type=int, default=50, help="nodes also checked through the history API")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 60_000:
        parser.error(f"--nodes: expected 1-60000, got {args.nodes}")
    if not 0 < args.minutes <= 120:
        parser.error(f"--minutes: expected 0-120, got {args.minutes:g}")
    with tempfile.TemporaryDirectory(prefix="nodewatch-restart-") as tmp:
        result = asyncio.run(run(args.nodes, args.minutes, args.replay_s, args.api_nodes, Path(tmp)))
    print(table(result))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
