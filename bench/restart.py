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
4. Gaps split by who is to blame. Each simulated agent records which seqs an ack promised
   (``nodewatch.simnodes.AckLedger``: an ack on the seq's own connection, or the next hello's ack;
   ``--ack-record``). A seq missing from the file that an ack promised is **acked and lost**: a
   store fault. One no ack covered is **never acked**: the simulator sent it on a connection that
   ended first (the collector was killed, or it shed the connection) and, keeping no backlog, never
   sent it again, where a real agent replays it after its next hello. Beside them: the killed
   collector's own count of seq jumps (``missing_samples``), what its full queue refused, and its
   ingest closes by reason (``/metrics``), which say why connections ended.

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
import bisect
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import msgpack

from bench._procs import ProcessGroup, Spawned, get_json, store_flags
from bench._stats import percentile
from collector.store.policy import RetentionPolicy
from collector.store.sqlite_reader import SqliteReader
from nodewatch.simnodes import NODES_PER_PROCESS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "restart.json"
POLL_S = 0.02  # how often health is tried while the collector starts
SNAPSHOT_QUIET_S = 2.0  # no frame for this long after a snapshot part: the snapshot is complete
START_DEADLINE_S = 120.0
CONNECT_DEADLINE_S = 120.0  # then go on with the nodes that did connect, noted
READ_DEADLINE_S = 300.0  # a whole-fleet read while the collector is saturated
LISTING_TIMEOUT_S = 120.0  # one /api/v1/nodes of 10,000 nodes from a collector whose loop lags seconds
LOSS_EXAMPLES = 5  # nodes with an acked-and-lost sample described in the JSON, if any
LEDGER_DEADLINE_S = 30.0  # the fleet's workers close 2,500 connections each, then write their ack records
# One line of /metrics: the ingest connections refused or closed for one reason.
PROTOCOL_ERRORS = re.compile(
    r'^nodewatch_collector_protocol_errors_total\{endpoint="ingest",reason="([a-z_]+)"\} (\S+)$', re.M
)
T = TypeVar("T")


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
    # The gaps in the file, split by the fleet's ack record (nodewatch.simnodes.AckLedger):
    nodes_with_lost: int  # nodes missing a sample that an ack promised: a store fault
    lost_samples: int
    nodes_with_dropped: int  # nodes missing samples no ack covered: the simulator sent them and never replayed them
    dropped_samples: int
    missing_reported: int  # the killed collector's sum of missing_samples (seq jumps it saw): the drops it noticed
    refused_before_kill: int  # samples the killed collector's full queue refused (health: store.refused_samples)
    note: str
    lost_examples: list[str]  # in the JSON only


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
    """Whether ``seqs`` hold every seq from 1 up to ``upto``."""
    return len({s for s in seqs if 1 <= s <= upto}) == upto


@dataclass(frozen=True)
class Losses:
    """Every node's gaps in the file, split into what acks promised (lost) and what no ack covered (dropped)."""

    nodes_with_lost: int
    lost_samples: int
    nodes_with_dropped: int
    dropped_samples: int
    examples: list[str]  # a few nodes with a loss: its missing seqs and its promised runs, to look into


def split_gaps(stored: Sequence[int], promised: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(lost, dropped) for one node: promised seqs the file lacks, and missing seqs up to its top no ack covered.

    ``stored`` is sorted; ``promised`` is the ledger's sorted, disjoint ``[lo, hi]`` runs.
    """
    held = sorted(set(stored))
    top = held[-1] if held else 0
    lost = covered = 0
    for lo, hi in promised:
        inside = bisect.bisect_right(held, hi) - bisect.bisect_left(held, lo)
        lost += hi - lo + 1 - inside
        covered += max(0, min(hi, top) - lo + 1) - inside  # missing below the top, but promised: lost, not dropped
    return lost, top - len(held) - covered  # top - len(held): the seqs 1..top the file lacks


def losses(stored: dict[str, list[int]], ledgers: dict[str, list[list[int]]], nodes: Iterable[str]) -> Losses:
    """``split_gaps`` over the fleet."""
    nodes = list(nodes)
    counts = [split_gaps(stored.get(n, []), ledgers.get(n, [])) for n in nodes]
    examples: list[str] = []
    for node_id, (lost, _) in zip(nodes, counts, strict=True):
        if lost and len(examples) < LOSS_EXAMPLES:
            held = set(stored.get(node_id, []))
            missing = [s for lo, hi in ledgers.get(node_id, []) for s in range(lo, hi + 1) if s not in held]
            examples.append(f"{node_id}: promised {ledgers.get(node_id)} but missing {missing[:20]}")
    return Losses(
        nodes_with_lost=sum(lost > 0 for lost, _ in counts),
        lost_samples=sum(lost for lost, _ in counts),
        nodes_with_dropped=sum(dropped > 0 for _, dropped in counts),
        dropped_samples=sum(dropped for _, dropped in counts),
        examples=examples,
    )


def read_ledgers(directory: Path, files: int, deadline_s: float) -> dict[str, list[list[int]]]:
    """The fleet's ack records (one file per worker, written as it stops), waiting up to ``deadline_s`` for them."""
    started = time.monotonic()
    while len(list(directory.glob("acks-*.json"))) < files and time.monotonic() - started < deadline_s:
        time.sleep(0.2)
    out: dict[str, list[list[int]]] = {}
    for path in directory.glob("acks-*.json"):
        out.update(json.loads(path.read_text())["promised"])
    return out


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


async def _patient(call: Callable[[], Awaitable[T]], what: str, deadline_s: float = READ_DEADLINE_S) -> T:
    """``call()`` again while it times out: a collector at 10,000 nodes on a shared machine may take a while."""
    started = time.monotonic()
    while True:
        try:
            return await call()
        except (aiohttp.ClientError, TimeoutError):
            if time.monotonic() - started > deadline_s:
                raise RuntimeError(f"{what}: no answer within {deadline_s:g} s") from None
            await asyncio.sleep(0.5)


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
    health = lambda: get_json(session, base + "/api/v1/health")  # noqa: E731
    while not (await _patient(health, "health"))[1].get("store", {}).get("recent_loaded"):
        if time.monotonic() - spawned > START_DEADLINE_S:
            notes.append("the recent window was not loaded in time")
            break
        await asyncio.sleep(0.1)
    return health_s, snapshot_s, time.monotonic() - spawned, seen


@dataclass
class BeforeKill:
    """What the first collector showed just before its SIGKILL."""

    held: dict[str, int]  # every node's last_seq
    missing_reported: int
    refused: int
    closes: str  # its ingest closes by reason (``/metrics``), the likeliest causes of the simulator's drops


async def _push_then_read(
    session: aiohttp.ClientSession, base: str, nodes: int, minutes: float, notes: list[str]
) -> BeforeKill:
    """Wait for the fleet to connect, let it push ``minutes`` of history, then read what the collector holds."""
    connect_started = time.monotonic()
    while (connected := await _connected(session, base)) < nodes:
        if time.monotonic() - connect_started > CONNECT_DEADLINE_S:
            notes.append(f"{connected} of {nodes} nodes connected within {CONNECT_DEADLINE_S:g} s")
            break
        await asyncio.sleep(0.5)
    print(f"restart: {connected:,} nodes connected; pushing {minutes:g} min of history", file=sys.stderr)
    await asyncio.sleep(minutes * 60)
    store = (await _patient(lambda: get_json(session, base + "/api/v1/health"), "health"))[1].get("store", {})
    closes = await _patient(lambda: _ingest_closes(session, base), "metrics")
    statuses = await _patient(lambda: _statuses(session, base), "the nodes' seqs before the kill")
    held = {status["node_id"]: int(status["last_seq"]) for status in statuses}
    missing = sum(int(status.get("missing_samples", 0)) for status in statuses)
    return BeforeKill(held, missing, int(store.get("refused_samples", 0)), closes)


async def _statuses(session: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    """Every node's status from one ``/api/v1/nodes``, waiting as long as a saturated collector takes to send it.

    ``bench._procs.get_json`` gives up after 10 s: at 10,000 nodes on a loaded machine the
    listing (streamed 200 nodes at a time) took longer, and every retry started it again.
    """
    async with asyncio.timeout(LISTING_TIMEOUT_S), session.get(base + "/api/v1/nodes") as response:
        body = await response.json()
    if response.status != 200 or not isinstance(body, dict):
        raise RuntimeError(f"/api/v1/nodes answered {response.status}: {body!r:.200}")
    return [entry["status"] for entry in body["nodes"]]


async def _ingest_closes(session: aiohttp.ClientSession, base: str) -> str:
    """``/metrics``' ingest protocol errors by reason, largest first: ``reason=N, ...``."""
    async with asyncio.timeout(30), session.get(base + "/metrics") as response:
        text = await response.text()
    found = PROTOCOL_ERRORS.findall(text)
    counts = sorted(((int(float(n)), reason) for reason, n in found if float(n) > 0), reverse=True)
    return ", ".join(f"{reason}={n}" for n, reason in counts)


async def _stop_fleet(fleet: Spawned, acks_dir: Path, nodes: int, notes: list[str]) -> dict[str, list[list[int]]]:
    """Stop the fleet and read its ack records; kill what is left."""
    fleet.signal(signal.SIGTERM)  # the fleet's workers write their ack records as they stop
    workers = max(1, min(8, math.ceil(nodes / NODES_PER_PROCESS)))
    ledgers = await asyncio.to_thread(read_ledgers, acks_dir, workers, LEDGER_DEADLINE_S)
    fleet.kill()
    if len(ledgers) < nodes:
        notes.append(f"ack records of {len(ledgers)} of {nodes} nodes")
    return ledgers


async def run(
    nodes: int, minutes: float, replay_s: float, api_nodes: int, workdir: Path, *, storm: bool = True
) -> RestartResult:
    """The whole scenario against one data dir under ``workdir``.

    ``storm`` False stops the fleet (SIGSTOP) from the kill until the restart is timed, so the times are
    the collector's own; then it goes on (SIGCONT), and its agents reconnect.
    """
    group = ProcessGroup(workdir)
    notes: list[str] = []
    try:
        extra = ["--max-nodes", str(nodes + 100), "--log-level", "WARNING"]
        first = await asyncio.to_thread(group.collector, *extra)
        base = first.url
        started_at = time.time()
        acks_dir = workdir / "acks"
        acks_dir.mkdir()
        # --spread-addresses: the fleet's workers come from 127.0.0.2 and up, so the bench's own health and
        # snapshot requests (from 127.0.0.1) are not queued behind the storm's per-address cap (trust.nodetable).
        # --ack-record: what tells a store loss from the simulator's own drops (nodewatch.simnodes.AckLedger).
        fleet_args = ["--no-dying", "--prefix", "restart", "--spread-addresses", "--ack-record", str(acks_dir)]
        duration_s = minutes * 60 + CONNECT_DEADLINE_S + replay_s + START_DEADLINE_S + READ_DEADLINE_S
        fleet = group.fleet(base, nodes, 1.0, duration_s, *fleet_args)
        async with aiohttp.ClientSession() as session:
            before = await _push_then_read(session, base, nodes, minutes, notes)
            held = before.held
            if not storm:
                os.killpg(fleet.pid, signal.SIGSTOP)
            first.proc.kill()
            durable = await asyncio.to_thread(_durable_seqs, group.data_dir)
            db_mib = sum(p.stat().st_size for p in group.data_dir.glob("nodewatch.db*")) / 2**20
            argv = [sys.executable, "-m", "nodewatch", "collector", "--bind", f"127.0.0.1:{first.port}", *extra]
            group.spawn("collector", [*argv, *store_flags(group.data_dir)])
            spawned = time.monotonic()
            health_s, snapshot_s, rings_s, seen = await _time_restart(session, base, spawned, len(held), notes)
            if not storm:
                os.killpg(fleet.pid, signal.SIGCONT)
                notes.append("no reconnect storm: the fleet was stopped until the restart was timed")
            after = await _patient(lambda: _statuses(session, base), "the restored nodes' seqs")
            restored = {status["node_id"]: int(status["last_seq"]) for status in after}
            await asyncio.sleep(replay_s)
            ledgers = await _stop_fleet(fleet, acks_dir, nodes, notes)
            check_started = time.monotonic()
            stored = await asyncio.to_thread(_stored_seqs, group.data_dir, started_at - 60)
            check_s = time.monotonic() - check_started
            if before.closes:
                notes.append(f"the first collector's ingest closes: {before.closes}")
            api_ids = sorted(held)[:: max(1, len(held) // max(1, api_nodes))][:api_nodes]
            api_gaps = 0
            for node_id in api_ids:
                seqs = await _history_seqs(session, base, node_id, started_at - 60)
                api_gaps += not _gap_free(seqs, durable.get(node_id, 0))
    finally:
        group.close()
    split = losses(stored, ledgers, held)
    tails = [seq - durable.get(node_id, 0) for node_id, seq in held.items()]
    return RestartResult(
        nodes=nodes,
        minutes=minutes,
        db_mib=round(db_mib, 1),
        health_s=round(health_s, 3),
        snapshot_s=round(snapshot_s, 3),
        snapshot_nodes=seen,
        rings_s=round(rings_s, 3),
        nodes_checked=len(held),
        nodes_with_gaps=sum(not _gap_free(stored.get(n, []), durable.get(n, 0)) for n in held),
        api_checked=len(api_ids),
        api_with_gaps=api_gaps,
        check_s=round(check_s, 2),
        restored_seq_min=min(restored.values(), default=0),
        tail_p50=percentile([float(t) for t in tails], 0.5),
        tail_max=max(tails, default=0),
        nodes_with_lost=split.nodes_with_lost,
        lost_samples=split.lost_samples,
        nodes_with_dropped=split.nodes_with_dropped,
        dropped_samples=split.dropped_samples,
        missing_reported=before.missing_reported,
        refused_before_kill=before.refused,
        lost_examples=split.examples,
        note="; ".join(notes),
    )


def table(r: RestartResult) -> str:
    """The markdown table, and the gaps split by the fleet's ack record."""
    return "\n".join(
        [
            "| nodes | history min | db MiB | health answers s | all nodes in snapshot s | rings refilled s | "
            "nodes checked (file) | with gaps | nodes checked (API) | with gaps | uncommitted tail p50 | tail max |",
            "|" + "---:|" * 12,
            f"| {r.nodes:,} | {r.minutes:g} | {r.db_mib:.1f} | {r.health_s:.2f} | {r.snapshot_s:.2f} | "
            f"{r.rings_s:.2f} | {r.nodes_checked:,} | {r.nodes_with_gaps} | {r.api_checked} | {r.api_with_gaps} | "
            f"{r.tail_p50:g} | {r.tail_max} |",
            "",
            "| acked and lost: nodes | samples | never acked (the simulator's, not replayed): nodes | samples | "
            "seq jumps the killed collector counted | samples its full queue refused |",
            "|" + "---:|" * 6,
            f"| {r.nodes_with_lost} | {r.lost_samples} | {r.nodes_with_dropped} | {r.dropped_samples} | "
            f"{r.missing_reported} | {r.refused_before_kill} |",
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
    parser.add_argument(
        "--no-storm", action="store_true", help="stop the fleet over the restart: time the collector alone"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 60_000:
        parser.error(f"--nodes: expected 1-60000, got {args.nodes}")
    if not 0 < args.minutes <= 120:
        parser.error(f"--minutes: expected 0-120, got {args.minutes:g}")
    with tempfile.TemporaryDirectory(prefix="nodewatch-restart-") as tmp:
        scenario = run(args.nodes, args.minutes, args.replay_s, args.api_nodes, Path(tmp), storm=not args.no_storm)
        result = asyncio.run(scenario)
    print(table(result))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
