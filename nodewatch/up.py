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
subscription websocket. It holds no state of the fleet itself, and keeps no data:
``--data-dir``/``--ephemeral`` and ``--state-dir``/``--node-id`` go to the collector
and the agent as given, and without them each program uses its own default. It
prints where the data lives, as the collector's health reports it.

Not here: spawning, stderr relays, restarts and the health wait (``nodewatch.children``).
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from nodewatch.children import STOP_TIMEOUT_S, RestartBackoff, Spawner, Supervisor, wait_for_collector
from shared.codec import COLLECTOR_LIMITS, decode
from shared.messages import NodeEntry, Snapshot, Update
from viewer.batching import merge_entry
from viewer.cli import EXIT_NO_DISPLAY, has_display

__all__ = [
    "EXIT_NO_DISPLAY",
    "RestartBackoff",
    "Supervisor",
    "data_place",
    "format_table",
    "has_display",
    "main",
    "viewer_ends_run",
]

TABLE_EVERY_S: Final = 2.0
WATCH_EVERY_S: Final = 0.2  # how often children are checked: a dead collector is noticed within this
# Signals that mean "the user (or the system) ended it": SIGINT, SIGTERM, SIGHUP.
_ENDING_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
# Options passed on as given: without one, the program keeps its own default, named here for --help.
_PASSED_ON: Final = (
    (
        "--data-dir",
        "DIR",
        "the collector's store: the fleet and its history (default, the collector's: /var/lib/nodewatch as root, "
        "else $XDG_STATE_HOME/nodewatch or ~/.local/state/nodewatch)",
    ),
    (
        "--state-dir",
        "DIR",
        "the agent's node key (default, the agent's: $STATE_DIRECTORY, else /var/lib/nodewatch-agent as root, "
        "~/.local/state/nodewatch-agent as a user)",
    ),
    ("--node-id", "ID", "this machine's node id (default, the agent's: the hostname)"),
)
# The collector's exit status for a data dir it cannot use: locked, unwritable, corrupt or foreign.
EXIT_DATA_DIR: Final = 2


@dataclass(frozen=True)
class UpConfig:
    """What ``nodewatch up`` was asked to run."""

    host: str
    port: int
    interval_s: float
    simulate: int
    headless: bool
    verbose: bool = False
    # Passed on only when given, so each program keeps its own documented default.
    collector_store: tuple[str, ...] = ()
    agent_identity: tuple[str, ...] = ()


def viewer_ends_run(returncode: int) -> bool:
    """True if the viewer's exit means "stop everything": closed by the user, or ended by a signal."""
    if returncode == 0:
        return True
    return returncode < 0 and -returncode in _ENDING_SIGNALS


def _parse(argv: Sequence[str] | None) -> UpConfig:
    parser = argparse.ArgumentParser(
        prog="nodewatch up", description="Run a collector, an agent for this machine and the viewer together."
    )
    parser.add_argument("--port", type=int, default=8765, help="collector port on 127.0.0.1 (default 8765)")
    parser.add_argument("--interval", type=float, default=1.0, help="agent sampling interval in seconds (default 1)")
    parser.add_argument("--simulate", type=int, default=0, help="also run N simulated agents (default 0)")
    parser.add_argument("--headless", action="store_true", help="print a table instead of opening the viewer")
    parser.add_argument("-v", "--verbose", action="store_true", help="let the programs log at INFO")
    parser.add_argument("--ephemeral", action="store_true", help="the collector keeps nothing on disk")
    for flag, metavar, help_text in _PASSED_ON:
        parser.add_argument(flag, metavar=metavar, help=help_text)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: expected 0-65535, got {args.port}")
    if not 0.05 <= args.interval <= 3600:
        parser.error(f"--interval: expected seconds between 0.05 and 3600, got {args.interval}")
    if args.simulate < 0:
        parser.error(f"--simulate: expected a node count >= 0, got {args.simulate}")
    if args.ephemeral and args.data_dir is not None:
        parser.error(f"--ephemeral and --data-dir: expected one of them, got both (--data-dir {args.data_dir!r})")
    store: tuple[str, ...] = (
        ("--ephemeral",) if args.ephemeral else () if args.data_dir is None else ("--data-dir", args.data_dir)
    )
    identity: tuple[str, ...] = () if args.state_dir is None else ("--state-dir", args.state_dir)
    identity += () if args.node_id is None else ("--node-id", args.node_id)
    return UpConfig("127.0.0.1", args.port, args.interval, args.simulate, args.headless, args.verbose, store, identity)


def _say(text: str) -> None:
    print(f"nodewatch up: {text}", flush=True)


def data_place(health: dict[str, object]) -> str:
    """Where the collector keeps its data, from its own health answer: the store's dir, or "in memory"."""
    store = health.get("store")
    path = store.get("path") if isinstance(store, dict) else None
    return str(Path(path).parent) if isinstance(path, str) else "in memory"


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
    viewer = subprocess.Popen([sys.executable, "-m", "nodewatch", "viewer", "--collector", base_url])  # noqa: S603
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


def _start_collector(supervisor: Supervisor, spawner: Spawner, config: UpConfig, log: tuple[str, ...]) -> int | None:
    """Start the collector and wait for its health; None once it answers, else the exit status for ``up``."""
    base_url = f"http://{config.host}:{config.port}"
    health_url = f"{base_url}/api/v1/health"
    collector = supervisor.start(
        "collector", "collector", "--bind", f"{config.host}:{config.port}", *config.collector_store, *log
    )
    start = wait_for_collector(health_url, collector.proc)
    if not start.up:
        proc = collector.proc
        held = spawner.relays[proc.pid].drain() if proc is not None and proc.pid in spawner.relays else []
        sys.stderr.write("".join(held))
        sys.stderr.flush()
        supervisor.children.remove(collector)  # nothing to restart: up ends here
        if start.exit_status == EXIT_DATA_DIR:
            _say("the collector cannot use its data dir (its message is above); stopping.")
            return EXIT_DATA_DIR
        if start.exit_status is not None:
            _say(f"the collector exited with status {start.exit_status} (its message is above); stopping.")
            return 1
        _say(f"the collector did not answer {health_url}; is port {config.port} free?")
        return 1
    spawner.release()
    _say(f"collector at {base_url} (health: {health_url})")
    _say(f"data: {data_place(start.health)}")
    if start.degraded is not None:
        _say(f"collector is degraded: {start.degraded}")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Start everything, watch it until Ctrl-C (or the viewer closing), then stop everything."""
    config = _parse(argv)
    base_url = f"http://{config.host}:{config.port}"
    health_url = f"{base_url}/api/v1/health"
    log = () if config.verbose else ("--log-level", "WARNING")
    spawner = Spawner()
    supervisor = Supervisor(spawner, _say)

    def request_stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    try:
        failed = _start_collector(supervisor, spawner, config, log)
        if failed is not None:
            return failed
        supervisor.start(
            "agent",
            "agent",
            "--collector",
            base_url,
            "--interval",
            str(config.interval_s),
            *config.agent_identity,
            *log,
        )
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
