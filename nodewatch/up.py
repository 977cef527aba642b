"""``nodewatch up``: run a collector, an agent for this machine and the viewer, together.

This is the launcher behind ``make run``. It only starts and stops processes
(each program runs as its own ``nodewatch`` subprocess, exactly as an
operator would start it) and, where there is no display, prints the fleet as
a table from the collector's subscription websocket. It holds no state of
the fleet itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from shared.codec import COLLECTOR_LIMITS, decode
from shared.messages import NodeEntry, Snapshot, Update

STARTUP_TIMEOUT_S = 20.0  # a cold start imports aiohttp and pydantic: a few seconds on a slow disk
STOP_TIMEOUT_S = 3.0  # each program promises to exit within 2 s of SIGTERM
TABLE_EVERY_S = 2.0


@dataclass(frozen=True)
class UpConfig:
    """What ``nodewatch up`` was asked to run."""

    host: str
    port: int
    interval_s: float
    simulate: int
    headless: bool


def _parse(argv: Sequence[str] | None) -> UpConfig:
    parser = argparse.ArgumentParser(
        prog="nodewatch up", description="Run a collector, an agent for this machine and the viewer together."
    )
    parser.add_argument("--port", type=int, default=8765, help="collector port on 127.0.0.1 (default 8765)")
    parser.add_argument("--interval", type=float, default=1.0, help="agent sampling interval in seconds (default 1)")
    parser.add_argument("--simulate", type=int, default=0, help="also run N simulated agents (default 0)")
    parser.add_argument("--headless", action="store_true", help="print a table instead of opening the viewer")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: expected 0-65535, got {args.port}")
    if not 0.05 <= args.interval <= 3600:
        parser.error(f"--interval: expected seconds between 0.05 and 3600, got {args.interval}")
    if args.simulate < 0:
        parser.error(f"--simulate: expected a node count >= 0, got {args.simulate}")
    return UpConfig(
        host="127.0.0.1", port=args.port, interval_s=args.interval, simulate=args.simulate, headless=args.headless
    )


def has_display(environ: dict[str, str]) -> bool:
    """Say whether a Qt window can be shown: a display server, or a platform chosen by hand."""
    return any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "nodewatch", *args])  # noqa: S603 - our own CLI


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM in reverse start order, then SIGKILL whatever outlives its grace period."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _print_table(base_url: str, stop: asyncio.Event) -> None:
    """Follow the subscription websocket and print the fleet every few seconds (headless mode)."""
    nodes: dict[str, NodeEntry] = {}
    ws_url = base_url.replace("http://", "ws://") + "/api/v1/subscribe"
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.ws_connect(ws_url, heartbeat=10.0, max_msg_size=0) as ws:
                    last_print = 0.0
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.BINARY:
                            break
                        message = decode(msg.data, COLLECTOR_LIMITS)
                        if isinstance(message, Snapshot):
                            nodes = {entry.status.node_id: entry for entry in message.nodes}
                        elif isinstance(message, Update):
                            for entry in message.nodes:
                                old = nodes.get(entry.status.node_id)
                                nodes[entry.status.node_id] = entry.model_copy(
                                    update={
                                        "facts": entry.facts or (old.facts if old else None),
                                        "last_sample": entry.last_sample or (old.last_sample if old else None),
                                    }
                                )
                            for node_id in message.removed:
                                nodes.pop(node_id, None)
                        if time.monotonic() - last_print >= TABLE_EVERY_S:
                            last_print = time.monotonic()
                            print(format_table(list(nodes.values())), flush=True)
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                print(f"nodewatch up: subscription lost ({exc!r:.80}); retrying", file=sys.stderr)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def format_table(entries: Sequence[NodeEntry]) -> str:
    """Render node entries as a fixed-width text table, one line per node."""
    rows = [f"{'STATE':<8} {'NODE':<24} {'CPU %':>6} {'MEM %':>6} {'LOAD1':>6}"]
    for entry in sorted(entries, key=lambda e: e.status.node_id):
        sample = entry.last_sample
        cpu = f"{sample.cpu_percent:.1f}" if sample and sample.cpu_percent is not None else "-"
        mem = f"{sample.mem_percent:.1f}" if sample and sample.mem_percent is not None else "-"
        load = f"{sample.load_avg[0]:.2f}" if sample and sample.load_avg else "-"
        rows.append(f"{entry.status.state:<8} {entry.status.node_id:<24} {cpu:>6} {mem:>6} {load:>6}")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Start everything, wait for Ctrl-C (or the viewer closing), then stop everything."""
    config = _parse(argv)
    base_url = f"http://{config.host}:{config.port}"
    health_url = f"{base_url}/api/v1/health"
    procs: list[subprocess.Popen[bytes]] = []
    stop = asyncio.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    try:
        collector = _spawn("collector", "--bind", f"{config.host}:{config.port}")
        procs.append(collector)
        if not _wait_healthy(health_url, collector):
            print(f"nodewatch up: the collector did not answer {health_url}; is port {config.port} free?")
            return 1
        print(f"nodewatch up: collector healthy at {health_url}", flush=True)
        procs.append(_spawn("agent", "--collector", base_url, "--interval", str(config.interval_s)))
        if config.simulate > 0:
            procs.append(_spawn_fleet(base_url, config.simulate))
        viewer_possible = importlib.util.find_spec("PyQt6") is not None
        reason = "--headless was given" if config.headless else "no display found (DISPLAY/WAYLAND_DISPLAY unset)"
        if not viewer_possible:
            reason = "PyQt6 is not installed (pip install 'nodewatch[viewer]')"
        elif not config.headless and has_display(dict(os.environ)):
            viewer = _spawn("viewer", "--collector", base_url)
            procs.append(viewer)
            code = viewer.wait()
            if code == 0:
                return 0
            reason = f"the viewer exited with status {code} (see its message above)"
        print(f"nodewatch up: no viewer: {reason}.")
        print(f"nodewatch up: collector and agent keep running; health at {health_url}. Ctrl-C stops everything.")
        asyncio.run(_print_table(base_url, stop))
    except KeyboardInterrupt:
        pass
    finally:
        _stop(procs)
    return 0


def _spawn_fleet(base_url: str, count: int) -> subprocess.Popen[bytes]:
    bench_fleet = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "fleet.py")  # noqa: PTH100, PTH118, PTH120
    return subprocess.Popen([sys.executable, bench_fleet, "--collector", base_url, "--nodes", str(count)])  # noqa: S603
