"""A stub collector that replays recorded subscribe frames, so a viewer can face 10,000 nodes alone.

This machine cannot run 10,000 agents, a collector and a viewer at once. So ``record``
runs the real parts without the viewer: a real collector, the bench fleet
(``bench/fleet.py``, N simulated agents at 1 Hz) and one real websocket subscriber that
writes the snapshot and ``--seconds`` of update frames, byte for byte, with their
arrival offsets, to a file. ``serve`` then answers ``/api/v1/subscribe`` with that
snapshot and those frames at the recorded offsets, looping: each loop moves every
wall-clock instant (``server_time_at``, ``state_since_at``, ``last_seen_at``,
``sampled_at``) on by the loop's length and every seq on by the samples a node sends in
it, so the viewer sees one continuous fleet, not a replay. A ``history_request`` gets
the node's snapshot history, moved the same way (a ranged one gets an empty range).

Not a collector: no ingest, no liveness, no coalescing. A viewer that reads slowly gets
the frames late rather than merged, and the stub never closes it for that.

    .venv/bin/python bench/replay_stub.py record --nodes 10000 --seconds 60 --out bench/results/replay-10000.nwrec
    .venv/bin/python bench/replay_stub.py serve bench/results/replay-10000.nwrec
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import selectors
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
from aiohttp import web

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.codec import SUBSCRIBE_REQUEST_LIMITS, decode, encode
from shared.errors import ProtocolError
from shared.messages import History, HistoryRange, HistoryRequest, NodeHistory, RangeSeries

REPO = Path(__file__).resolve().parent.parent
MAGIC = b"NWREPLAY1\n"
_RECORD = struct.Struct("<dI")  # arrival offset (s since the snapshot), frame length
SUBSCRIBE_PATH = "/api/v1/subscribe"
# The viewer's own frame ceiling (COLLECTOR_LIMITS): a 10,000-node snapshot is tens of MiB.
MAX_FRAME_BYTES = 256 * 1024 * 1024
_SERIES = tuple(RangeSeries.model_fields)  # the seven series a history carries, cpu_percent first


@dataclass(frozen=True)
class Recording:
    """One recorded subscription: the snapshot, then update frames at offsets from it."""

    snapshot: bytes
    updates: list[tuple[float, bytes]]  # (offset s, frame), offsets in [0, loop_s)
    loop_s: float
    header: dict[str, Any]

    def write(self, path: Path) -> None:
        """Save to ``path``: magic, a JSON header line, then (offset, length, bytes) records."""
        with path.open("wb") as out:
            out.write(MAGIC)
            out.write(json.dumps({**self.header, "loop_s": self.loop_s}).encode() + b"\n")
            for offset_s, frame in [(0.0, self.snapshot), *self.updates]:
                out.write(_RECORD.pack(offset_s, len(frame)))
                out.write(frame)

    @classmethod
    def read(cls, path: Path) -> Recording:
        """Load a file written by ``write``; ValueError if it is not one."""
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            raise ValueError(f"expected a replay recording starting {MAGIC!r}, got {data[:10]!r} in {path}")
        end = data.index(b"\n", len(MAGIC))
        header: dict[str, Any] = json.loads(data[len(MAGIC) : end])
        frames: list[tuple[float, bytes]] = []
        at = end + 1
        while at < len(data):
            offset_s, length = _RECORD.unpack_from(data, at)
            at += _RECORD.size
            frames.append((offset_s, data[at : at + length]))
            at += length
        if not frames:
            raise ValueError(f"expected a snapshot in {path}, got no frames")
        return cls(frames[0][1], frames[1:], float(header["loop_s"]), header)


@dataclass(frozen=True)
class Shift:
    """How far one replayed frame moves: wall-clock seconds, and loops (each worth a node's samples)."""

    seconds: float
    loops: int
    loop_s: float

    def seqs(self, interval_s: float) -> int:
        """How many seqs a node at ``interval_s`` sends in ``loops`` loops."""
        return self.loops * round(self.loop_s / interval_s)


def retime(frame: bytes, shift: Shift, interval_s: float = 1.0) -> bytes:
    """``frame`` (a snapshot, update or history, msgpack) with its instants and seqs moved by ``shift``.

    A ``history`` frame carries no interval of its own: ``interval_s`` is its node's.
    """
    message = msgpack.unpackb(frame, raw=False)
    if "server_time_at" in message:
        message["server_time_at"] += shift.seconds
    for entry in message.get("nodes", ()):
        status = entry["status"]
        dseq = shift.seqs(status["interval_s"])
        status["state_since_at"] += shift.seconds
        if status.get("last_seen_at") is not None:
            status["last_seen_at"] += shift.seconds
        status["last_seq"] += dseq
        sample = entry.get("last_sample")
        if sample is not None:
            sample["sampled_at"] += shift.seconds
            sample["seq"] += dseq
        if entry.get("history") is not None:
            _retime_history(entry["history"], shift.seconds, dseq)
    if message.get("type") == "history":
        _retime_history(message["history"], shift.seconds, shift.seqs(interval_s))
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def _retime_history(history: dict[str, list[Any]], seconds: float, dseq: int) -> None:
    history["sampled_at"] = [at + seconds for at in history["sampled_at"]]
    history["seq"] = [seq + dseq for seq in history["seq"]]


def histories(snapshot: bytes) -> dict[str, tuple[float, bytes]]:
    """Each node's snapshot history as a ready ``history`` message (unshifted), with the node's interval."""
    answers: dict[str, tuple[float, bytes]] = {}
    for entry in msgpack.unpackb(snapshot, raw=False)["nodes"]:
        node_id = entry["status"]["node_id"]
        history = entry.get("history") or {"seq": [], "sampled_at": [], **{name: [] for name in _SERIES}}
        answer = msgpack.packb({"type": "history", "node_id": node_id, "history": history}, use_bin_type=True)
        answers[node_id] = (entry["status"]["interval_s"], answer)
    return answers


def split_updates(recording: Recording, max_entries: int) -> Recording:
    """``recording`` with every update of over ``max_entries`` nodes cut into several, sent at the same instant.

    What a collector that bounds its update frames would send: the same entries at the same
    rate, in frames a viewer decodes in bounded pieces (an A/B for the viewer's stalls).
    """
    updates: list[tuple[float, bytes]] = []
    for offset_s, frame in recording.updates:
        message = msgpack.unpackb(frame, raw=False)
        nodes = message.get("nodes", [])
        if len(nodes) <= max_entries:
            updates.append((offset_s, frame))
            continue
        starts = range(0, len(nodes), max_entries)
        for start in starts:
            part = {**message, "nodes": nodes[start : start + max_entries]}
            part["removed"] = message.get("removed", []) if start == starts[-1] else []
            updates.append((offset_s, msgpack.packb(part, use_bin_type=True)))
    return Recording(recording.snapshot, updates, recording.loop_s, {**recording.header, "max_entries": max_entries})


def schedule(recording: Recording, started_s: float) -> Iterator[tuple[float, int, bytes]]:
    """Forever: (when to send, loop number, frame) for the updates, loop after loop."""
    for loop in itertools.count():
        for offset_s, frame in recording.updates:
            yield started_s + loop * recording.loop_s + offset_s, loop, frame


def create_app(
    recording: Recording,
    wall: Callable[[], float] = time.time,
    mono: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The stub's aiohttp app: ``/api/v1/subscribe`` replays ``recording`` to every subscriber."""
    snapshot_at = float(msgpack.unpackb(recording.snapshot, raw=False)["server_time_at"])
    answers = histories(recording.snapshot)
    sockets: set[web.WebSocketResponse] = set()

    async def subscribe(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        sockets.add(ws)
        started_s, moved_s = mono(), wall() - snapshot_at
        loops = [0]
        reader = asyncio.create_task(_answer_requests(ws, answers, lambda: Shift(moved_s, loops[0], recording.loop_s)))
        try:
            await ws.send_bytes(retime(recording.snapshot, Shift(moved_s, 0, recording.loop_s)))
            for send_at, loop, frame in schedule(recording, started_s):
                if ws.closed:
                    break
                await asyncio.sleep(max(0.0, send_at - mono()))
                loops[0] = loop
                await ws.send_bytes(retime(frame, Shift(moved_s + loop * recording.loop_s, loop, recording.loop_s)))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the viewer went away mid-send
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            sockets.discard(ws)
            await ws.close()
        return ws

    async def close_sockets(_app: web.Application) -> None:
        for ws in list(sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")

    app = web.Application()
    app.router.add_get(SUBSCRIBE_PATH, subscribe)
    app.on_shutdown.append(close_sockets)
    return app


async def _answer_requests(
    ws: web.WebSocketResponse, answers: dict[str, tuple[float, bytes]], shift: Callable[[], Shift]
) -> None:
    """Answer each ``history_request`` with the node's snapshot history (or an empty range), moved."""
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.BINARY:
            continue
        try:
            request = decode(msg.data, SUBSCRIBE_REQUEST_LIMITS)
        except ProtocolError:
            continue
        if not isinstance(request, HistoryRequest):
            continue
        if request.ranged:
            await ws.send_bytes(encode(_empty_range(request, time.time())))
            continue
        if request.node_id in answers:
            interval_s, answer = answers[request.node_id]
            await ws.send_bytes(retime(answer, shift(), interval_s))


def _empty_range(request: HistoryRequest, now_at: float) -> NodeHistory:
    """A ranged answer with no points: the stub keeps no store."""
    to_at = request.to_at if request.to_at is not None else now_at
    from_at = request.from_at if request.from_at is not None else to_at - 3600.0
    no_series = RangeSeries(**{name: [] for name in _SERIES})
    empty = History(seq=[], sampled_at=[], **{name: [] for name in _SERIES})
    answer_range = HistoryRange(
        server_time_at=now_at,
        from_at=from_at,
        to_at=to_at,
        node_id=request.node_id,
        tier="raw",
        step_s=1.0,
        at=[],
        count=[],
        avg=no_series,
        gaps=[[from_at, to_at]],
    )
    return NodeHistory(node_id=request.node_id, history=empty, range=answer_range)


# ---- serve ---------------------------------------------------------------------------------------


def start_stub(
    path: Path, timeout_s: float = 120.0, max_entries: int = 0
) -> tuple[subprocess.Popen[str], str, dict[str, Any]]:
    """Run ``serve path`` as a process (so its CPU is not the viewer's); return it, its URL and the header."""
    with path.open("rb") as recording:
        if recording.read(len(MAGIC)) != MAGIC:
            raise SystemExit(f"replay stub: {path} is not a replay recording")
        header: dict[str, Any] = json.loads(recording.readline())
    command = [sys.executable, str(Path(__file__).resolve()), "serve", str(path), "--max-entries", str(max_entries)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s  # loading a 10,000-node minute is ~400 MB
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and selector.select(timeout=deadline - time.monotonic()):
            line = process.stdout.readline()
            if line.startswith("replay stub listening on "):
                return process, line.split()[-1], header
            if not line:
                break
    process.kill()
    raise SystemExit(f"replay stub: no URL within {timeout_s:g} s")


async def serve(recording: Recording, host: str, port: int) -> None:
    """Serve ``recording`` until cancelled (SIGTERM or SIGINT), after printing the URL."""
    runner = web.AppRunner(create_app(recording))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    print(f"replay stub listening on http://{bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """``record`` a real fleet's subscription to a file, or ``serve`` one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="record a real collector's subscription under a real fleet")
    rec.add_argument("--nodes", type=int, default=10_000, help="simulated agents at 1 Hz (default 10000)")
    rec.add_argument("--seconds", type=float, default=60.0, help="seconds of updates to keep (default 60)")
    rec.add_argument("--settle", type=float, default=20.0, help="seconds after the connect storm (default 20)")
    rec.add_argument("--out", type=Path, required=True, help="the recording file to write")
    srv = commands.add_parser("serve", help="replay a recording on /api/v1/subscribe, looping")
    srv.add_argument("recording", type=Path)
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    srv.add_argument("--max-entries", type=int, default=0, help="cut updates into frames of at most N nodes")
    args = parser.parse_args(argv)
    if args.command == "record":
        if args.nodes < 1 or args.seconds <= 0:
            parser.error("--nodes: expected >= 1; --seconds: expected > 0")
        from bench._replay_record import run_recording

        recording = run_recording(args.nodes, args.seconds, args.settle, args.out)
        print(json.dumps(recording.header, indent=1))
        return 0
    try:
        recording = Recording.read(args.recording)
    except (OSError, ValueError) as exc:
        parser.error(f"recording: {exc}")
    if args.max_entries > 0:
        recording = split_updates(recording, args.max_entries)
    asyncio.run(serve(recording, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
