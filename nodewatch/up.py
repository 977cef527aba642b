"""``nodewatch up``: run a collector, an agent for this machine and the viewer, together, and watch them.

This is the launcher behind ``make run``. It starts each program as its own
``nodewatch`` subprocess, exactly as an operator would, and then watches them:

- the viewer closed by the user, or ended by a signal, ends the whole run (the
  headless table is only for when no viewer can start at all);
- a collector (or agent, or simulated fleet) that dies is reported and restarted
  with backoff (``RestartBackoff``);
- children log at WARNING unless ``-v``, so the one useful line (the collector's
  URL) is not buried under one INFO line per node.

Where there is no display it prints the fleet as a table from the collector's
subscription websocket. It holds no state of the fleet itself.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from shared.codec import COLLECTOR_LIMITS, decode
from shared.messages import NodeEntry, Snapshot, Update
from viewer.batching import merge_entry
from viewer.cli import EXIT_NO_DISPLAY, has_display

__all__ = ["EXIT_NO_DISPLAY", "RestartBackoff", "format_table", "has_display", "main", "viewer_ends_run"]

STARTUP_TIMEOUT_S: Final = 20.0  # a cold start imports aiohttp and pydantic: a few seconds on a slow disk
STOP_TIMEOUT_S: Final = 3.0  # each program promises to exit within 2 s of SIGTERM
TABLE_EVERY_S: Final = 2.0
WATCH_EVERY_S: Final = 0.2  # how often children are checked: a dead collector is noticed within this
# A child that ran this long before dying is restarted at once again (its earlier failures are forgotten).
STABLE_AFTER_S: Final = 60.0
# Signals that mean "the user (or the system) ended it": SIGINT, SIGTERM, SIGHUP.
_ENDING_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@dataclass(frozen=True)
class UpConfig:
    """What ``nodewatch up`` was asked to run."""

    host: str
    port: int
    interval_s: float
    simulate: int
    headless: bool
    verbose: bool = False


@dataclass
class RestartBackoff:
    """Delays before restarting a child that died: 1, 2, 4 ... 30 s; reset after a stable run. Pure."""

    initial_s: float = 1.0
    max_s: float = 30.0
    failures: int = 0

    def next_delay_s(self, ran_for_s: float) -> float:
        """Count one death after ``ran_for_s`` seconds of life and return the delay before the restart."""
        if ran_for_s >= STABLE_AFTER_S:
            self.failures = 0
        delay_s = min(self.max_s, self.initial_s * 2.0**self.failures)
        self.failures += 1
        return delay_s


def viewer_ends_run(returncode: int) -> bool:
    """True if the viewer's exit means "stop everything": closed by the user, or ended by a signal."""
    if returncode == 0:
        return True
    return returncode < 0 and -returncode in _ENDING_SIGNALS


@dataclass
class Child:
    """One watched program: what to run, its process, and when to restart it."""

    name: str
    args: tuple[str, ...]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: RestartBackoff = field(default_factory=RestartBackoff)


class Supervisor:
    """Starts children, notices deaths, restarts with backoff, stops them all in reverse order."""

    def __init__(
        self,
        spawn: Callable[[Sequence[str]], subprocess.Popen[bytes]],
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spawn = spawn
        self._say = say
        self._clock = clock
        self.children: list[Child] = []

    def start(self, name: str, *args: str) -> Child:
        """Start a child now and watch it from here on."""
        child = Child(name, args)
        self.children.append(child)
        self._launch(child)
        return child

    def _launch(self, child: Child) -> None:
        child.proc = self._spawn(child.args)
        child.started_at = self._clock()
        child.restart_at = None

    def watch(self) -> None:
        """Report children that died and restart those whose delay is over (call every ``WATCH_EVERY_S``)."""
        now = self._clock()
        for child in self.children:
            proc = child.proc
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._say(f"restarting the {child.name}")
                    self._launch(child)
                continue
            if proc is None or proc.poll() is None:
                continue
            delay_s = child.backoff.next_delay_s(now - child.started_at)
            self._say(f"the {child.name} exited with status {proc.returncode}; restarting in {delay_s:g} s")
            child.restart_at = now + delay_s

    def stop(self) -> None:
        """SIGTERM in reverse start order, then SIGKILL whatever outlives its grace period."""
        for child in reversed(self.children):
            proc = child.proc
            child.restart_at = None
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _parse(argv: Sequence[str] | None) -> UpConfig:
    parser = argparse.ArgumentParser(
        prog="nodewatch up", description="Run a collector, an agent for this machine and the viewer together."
    )
    parser.add_argument("--port", type=int, default=8765, help="collector port on 127.0.0.1 (default 8765)")
    parser.add_argument("--interval", type=float, default=1.0, help="agent sampling interval in seconds (default 1)")
    parser.add_argument("--simulate", type=int, default=0, help="also run N simulated agents (default 0)")
    parser.add_argument("--headless", action="store_true", help="print a table instead of opening the viewer")
    parser.add_argument("-v", "--verbose", action="store_true", help="let the programs log at INFO")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: expected 0-65535, got {args.port}")
    if not 0.05 <= args.interval <= 3600:
        parser.error(f"--interval: expected seconds between 0.05 and 3600, got {args.interval}")
    if args.simulate < 0:
        parser.error(f"--simulate: expected a node count >= 0, got {args.simulate}")
    return UpConfig("127.0.0.1", args.port, args.interval, args.simulate, args.headless, args.verbose)


def _spawn(args: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "nodewatch", *args])  # noqa: S603 - our own CLI


def _say(text: str) -> None:
    print(f"nodewatch up: {text}", flush=True)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is None or proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


async def _watch_forever(supervisor: Supervisor) -> None:
    while True:
        supervisor.watch()
        await asyncio.sleep(WATCH_EVERY_S)


async def _headless(base_url: str, supervisor: Supervisor) -> None:
    """Print the table and watch the children until cancelled (Ctrl-C, SIGTERM)."""
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(_watch_forever(supervisor))
        tasks.create_task(_print_table(base_url))


async def _print_table(base_url: str) -> None:
    """Follow the subscription websocket and print the fleet every few seconds (headless mode)."""
    nodes: dict[str, NodeEntry] = {}
    ws_url = base_url.replace("http://", "ws://") + "/api/v1/subscribe"
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.ws_connect(
                    ws_url, heartbeat=10.0, max_msg_size=COLLECTOR_LIMITS.max_frame_bytes
                ) as ws:
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
                                nodes[entry.status.node_id] = entry if old is None else merge_entry(old, entry)
                            for node_id in message.removed:
                                nodes.pop(node_id, None)
                        if time.monotonic() - last_print >= TABLE_EVERY_S:
                            last_print = time.monotonic()
                            print(format_table(list(nodes.values())), flush=True)
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                print(f"nodewatch up: subscription lost ({exc!r:.80}); retrying", file=sys.stderr)
            await asyncio.sleep(1.0)


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


def _run_viewer(supervisor: Supervisor, base_url: str) -> str | None:
    """Run the viewer while watching the rest; None if it ended the run, else why the table takes over."""
    viewer = _spawn(("viewer", "--collector", base_url))
    try:
        while (code := viewer.poll()) is None:
            supervisor.watch()
            time.sleep(WATCH_EVERY_S)
    finally:
        if viewer.poll() is None:
            viewer.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                viewer.wait(timeout=STOP_TIMEOUT_S)
    if viewer_ends_run(code):
        how = "closed" if code == 0 else f"ended by signal {signal.Signals(-code).name}"
        _say(f"the viewer was {how}; stopping everything.")
        return None
    return f"the viewer exited with status {code} (see its message above)"


def main(argv: Sequence[str] | None = None) -> int:
    """Start everything, watch it until Ctrl-C (or the viewer closing), then stop everything."""
    config = _parse(argv)
    base_url = f"http://{config.host}:{config.port}"
    health_url = f"{base_url}/api/v1/health"
    log = () if config.verbose else ("--log-level", "WARNING")
    supervisor = Supervisor(_spawn, _say)

    def request_stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    try:
        collector = supervisor.start("collector", "collector", "--bind", f"{config.host}:{config.port}", *log)
        if not _wait_healthy(health_url, collector.proc):
            _say(f"the collector did not answer {health_url}; is port {config.port} free?")
            return 1
        _say(f"collector at {base_url} (health: {health_url})")
        supervisor.start("agent", "agent", "--collector", base_url, "--interval", str(config.interval_s), *log)
        if config.simulate > 0:
            supervisor.start("simulated fleet", "simulate", "--collector", base_url, "--nodes", str(config.simulate))
        reason = "--headless was given" if config.headless else "no display found (DISPLAY/WAYLAND_DISPLAY unset)"
        if importlib.util.find_spec("PyQt6") is None:
            reason = "PyQt6 is not installed (pip install 'nodewatch[viewer]')"
        elif not config.headless and has_display(dict(os.environ)):
            why = _run_viewer(supervisor, base_url)
            if why is None:
                return 0
            reason = why
        _say(f"no viewer: {reason}.")
        _say(f"collector and agent keep running; health at {health_url}. Ctrl-C stops everything.")
        asyncio.run(_headless(base_url, supervisor))
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
    return 0
