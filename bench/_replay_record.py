"""``bench/replay_stub.py record``: a real collector, the bench fleet and one real subscriber, written to a file.

The subscriber connects before the fleet starts, as ``bench/e2e.py``'s does: it sees the
connect storm as updates and is never a latecomer asking a loaded collector for a
10,000-node snapshot (a subscriber that joined a loaded 10,000-node collector was closed
4429 ``subscriber_too_slow`` with this tree's snapshot parts). While the fleet connects
and settles, every update is folded into each node's latest entry and its last
``HISTORY_POINTS`` samples; at the start of the window those become the recording's
snapshot, exactly as a viewer following the same stream would hold the fleet. The
window's update frames are then kept byte for byte, with their arrival offsets.

Not here: replaying (``bench.replay_stub``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack

from bench._procs import LISTENING, ProcessGroup, health
from bench.replay_stub import MAX_FRAME_BYTES, SUBSCRIBE_PATH, Recording
from collector.history import SERIES
from shared.codec import COLLECTOR_LIMITS, decode

HISTORY_POINTS = 60  # what a collector's snapshot carries per node (docs/protocol.md 4.2)
# The collector takes at most 512 unauthenticated sockets per address (docs/security.md): a bigger
# fleet connects from 127.0.0.x, as bench/e2e.py's does.
SPREAD_ABOVE_NODES = 2000
_SAMPLE_SERIES = SERIES  # History columns, read straight from a heartbeat map (load_1 is load_avg[0])


def sample_point(heartbeat: dict[str, Any]) -> tuple[Any, ...]:
    """(seq, sampled_at, then the seven History values) of one heartbeat map."""
    load = heartbeat.get("load_avg")
    fields = {**heartbeat, "load_1": load[0] if load else None}
    return (heartbeat["seq"], heartbeat["sampled_at"], *(fields.get(name) for name in _SAMPLE_SERIES))


@dataclass
class FleetView:
    """What a viewer following the stream holds: each node's latest entry and its recent samples."""

    server_time_at: float = 0.0
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, deque[tuple[Any, ...]]] = field(default_factory=dict)

    def apply(self, message: dict[str, Any]) -> None:
        """Fold one snapshot or update (a decoded msgpack map) in, as docs/protocol.md 4.2 says to."""
        self.server_time_at = message["server_time_at"]
        for entry in message.get("nodes", ()):
            node_id = entry["status"]["node_id"]
            old = self.entries.setdefault(node_id, {})
            old["status"] = entry["status"]
            for key in ("facts", "last_sample"):
                if entry.get(key) is not None:
                    old[key] = entry[key]
            sample = entry.get("last_sample")
            if sample is not None:
                points = self.samples.setdefault(node_id, deque(maxlen=HISTORY_POINTS))
                points.append(sample_point(sample))
        for node_id in message.get("removed", ()):
            self.entries.pop(node_id, None)
            self.samples.pop(node_id, None)

    def snapshot(self) -> bytes:
        """The view as one snapshot frame, each node with its recent samples as history."""
        nodes = []
        for node_id, entry in self.entries.items():
            points = self.samples.get(node_id, ())
            columns = ["seq", "sampled_at", *_SAMPLE_SERIES]
            history = {name: [point[i] for point in points] for i, name in enumerate(columns)}
            nodes.append({**entry, "history": history})
        packed: bytes = msgpack.packb(
            {"type": "snapshot", "server_time_at": self.server_time_at, "nodes": nodes}, use_bin_type=True
        )
        return packed


async def follow(
    ws: aiohttp.ClientWebSocketResponse, view: FleetView, window: list[tuple[float, bytes]], started: list[float]
) -> None:
    """Read until closed: fold frames into ``view`` until ``started`` holds the window's start, then keep them."""
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.BINARY:
            break
        if started:
            window.append((time.monotonic() - started[0], msg.data))
        else:
            view.apply(msgpack.unpackb(msg.data, raw=False))
    if ws.close_code not in {None, 1000, 1001}:
        raise RuntimeError(f"the collector closed the subscription with {ws.close_code}")


async def record_fleet(group: ProcessGroup, base: str, nodes: int, seconds: float, settle_s: float) -> Recording:
    """Subscribe, start the fleet, wait for it and ``settle_s``, then record ``seconds`` of updates."""
    view, window, started = FleetView(), list[tuple[float, bytes]](), list[float]()
    url = base.replace("http://", "ws://") + SUBSCRIBE_PATH
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=MAX_FRAME_BYTES) as ws:
        reader = asyncio.create_task(follow(ws, view, window, started))
        spread = ["--spread-addresses"] if nodes > SPREAD_ABOVE_NODES else []
        group.fleet(base, nodes, 1.0, 900.0 + seconds, *spread)
        connected, deadline = 0, time.monotonic() + 300.0
        while time.monotonic() < deadline and connected < nodes * 0.95 and not reader.done():
            await asyncio.sleep(1.0)
            # AssertionError: health answered 429 or 503 during the connect storm; ask again
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError, KeyError, AssertionError):
                connected = int((await health(session, base))["agents_connected"])
        await asyncio.sleep(settle_s)
        if reader.done():  # closed on us: say why now, not after the window
            await reader
        snapshot = view.snapshot()  # no await between: the window starts where the view ends
        started.append(time.monotonic())
        await asyncio.sleep(seconds)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    window = [(offset, frame) for offset, frame in window if offset < seconds]
    entries = sum(len(msgpack.unpackb(frame)["nodes"]) for _, frame in window)
    header = {
        "nodes": len(view.entries),
        "fleet": nodes,
        "connected": connected,
        "recorded_at": time.time(),
        "source": f"real collector + bench/fleet.py --nodes {nodes} --interval 1; one real subscriber from the "
        "start; the snapshot is that subscriber's view at the window's start, the updates are the window's frames",
        "snapshot_bytes": len(snapshot),
        "updates": len(window),
        "update_bytes": sum(len(frame) for _, frame in window),
        "node_entries_per_s": round(entries / seconds, 1),
    }
    return Recording(snapshot, window, seconds, header)


def run_recording(nodes: int, seconds: float, settle_s: float, out: Path) -> Recording:
    """Run collector and fleet as real processes, record, stop them (SIGTERM first), check and save it."""
    with tempfile.TemporaryDirectory(prefix="nodewatch-replay-") as workdir:
        group = ProcessGroup(Path(workdir))
        try:
            argv = [sys.executable, "-m", "nodewatch", "collector", "--bind", "127.0.0.1:0", "--ephemeral"]
            argv += ["--log-level", "WARNING", "--max-nodes", str(nodes + 100)]
            collector = group.spawn("collector", argv)
            deadline = time.monotonic() + 30.0
            while not (match := LISTENING.search(collector.log_text())) and time.monotonic() < deadline:
                time.sleep(0.1)
            if match is None:
                raise RuntimeError(f"the collector did not listen: {collector.log_text()[-2000:]}")
            recording = asyncio.run(record_fleet(group, match.group(1), nodes, seconds, settle_s))
        finally:
            for proc in reversed(group.procs):  # SIGTERM first: the fleet stops its worker processes
                proc.terminate()
            group.close()
    decode(recording.snapshot, COLLECTOR_LIMITS)  # the assembled snapshot is a valid message, or this raises
    out.parent.mkdir(parents=True, exist_ok=True)
    recording.write(out)
    return recording
