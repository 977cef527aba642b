"""Does the viewer's UI thread stall under a big fleet? Measure it with the real parts.

Starts a real collector (``python -m nodewatch collector`` on 127.0.0.1, port 0) and a
simulated fleet (``bench/fleet.py``: N real websocket agents at 1 Hz, separate process),
then runs the real ``MainWindow`` (offscreen unless a display is set) in this process,
with one node selected so its charts extend live too. While it runs:

- a 10 ms ``Qt.TimerType.PreciseTimer`` probe on the UI thread records how late each tick is
  (lateness = gap between ticks minus 10 ms): p50 / p99 / max;
- an event filter counts paint events of the table's viewport (repaints per second);
- ``time.thread_time()`` on the UI thread gives its CPU share;
- RSS is sampled every 5 s; the slope (MB/min) is a least-squares fit.

Targets (issue #5): max stall < 50 ms, p99 < 16 ms, ~10 repaints/s max, RSS flat.
Prints a markdown table. Example::

    .venv/bin/python bench/viewer_stall.py --nodes 2000 --duration 60

With ``--replay FILE`` there is no collector and no fleet: ``bench/replay_stub.py serve FILE``
(a separate process) replays a recorded real subscription (issue #16: 10,000 nodes @1 Hz,
which this machine cannot run next to a viewer), and the table says so::

    .venv/bin/python bench/viewer_stall.py --replay bench/results/replay-10000.nwrec --duration 600
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stats import percentile
from bench.replay_stub import start_stub

REPO = Path(__file__).resolve().parent.parent
PROBE_INTERVAL_MS = 10  # the probe: a 10 ms PreciseTimer
RSS_SAMPLE_S = 5.0
_URL_RE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
_MIB = 1024.0 * 1024.0


@dataclass
class Measurements:
    """What the probe, the paint counter and the samplers saw during the measured window."""

    lateness_ms: list[float] = field(default_factory=list)
    paints: int = 0
    batches: int = 0
    slices: int = 0  # batch_ready emissions: a big batch is applied in slices (viewer.batching.split_batch)
    batch_nodes: int = 0
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (elapsed s, MiB)
    ui_cpu_s: float = 0.0
    process_cpu_s: float = 0.0
    elapsed_s: float = 0.0
    rows: int = 0
    close_s: float = 0.0
    link_thread_left: bool = True
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (perf_counter, what) with --trace
    feeder_cpu_s: float = 0.0  # the replay stub's CPU over the measured window


def start_collector() -> tuple[subprocess.Popen[str], str]:
    """Run the collector CLI on a free loopback port; return the process and its URL."""
    command = [
        sys.executable,
        "-m",
        "nodewatch",
        "collector",
        "--bind",
        "127.0.0.1:0",
        "--ephemeral",
        "--log-level",
        "WARNING",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 30.0
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and selector.select(timeout=deadline - time.monotonic()):
            line = process.stdout.readline()
            match = _URL_RE.search(line)
            if match:
                return process, match.group(1)
            if not line:
                break
    process.kill()
    raise SystemExit("viewer_stall: the collector did not print its URL within 30 s")


def health(url: str) -> dict[str, object]:
    """The collector's /api/v1/health body, even when it answers 503 (lagging) or 429 (a connect storm).

    During the fleet's connect storm the collector answers health 503 while its loop lags and 429
    while this address holds over 32 not-yet-authenticated sockets (docs/security.md): retry those.
    """
    for _ in range(20):
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=5) as response:
                body: dict[str, object] = json.loads(response.read())
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                lagging: dict[str, object] = json.loads(exc.read())
                return lagging
            if exc.code != 429:
                raise
            time.sleep(0.5)
    raise SystemExit("viewer_stall: the collector kept answering health with 429")


def wait_for_fleet(url: str, nodes: int, timeout_s: float) -> int:
    """Wait until most simulated agents are connected; return how many are."""
    deadline = time.monotonic() + timeout_s
    connected = 0
    while time.monotonic() < deadline:
        connected = int(str(health(url).get("agents_connected", 0)))
        if connected >= nodes * 0.95:
            break
        time.sleep(0.5)
    return connected


def rss_mib() -> float:
    """This process's resident set size, from /proc (no psutil needed)."""
    with Path("/proc/self/statm").open() as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / _MIB


def slope_mib_per_min(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, in MiB per minute."""
    if len(samples) < 2:  # a line needs two points
        return 0.0
    xs = [t for t, _ in samples]
    ys = [m for _, m in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    if denominator == 0:
        return 0.0
    return 60.0 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator


def run_viewer(  # noqa: PLR0915 - one measured scenario, read top to bottom
    url: str,
    nodes: int,
    duration_s: float,
    settle_s: float,
    *,
    profile: bool = False,
    trace: bool = False,
    feeder_pid: int | None = None,
    gc_off: bool = False,
) -> Measurements:
    """Run the real window against ``url``, measure for ``duration_s``, close it, return the numbers."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtCore import QEvent, QObject, Qt, QTimer
    from PyQt6.QtWidgets import QApplication

    from viewer.batching import NodeBatch
    from viewer.cli import freeze_gc
    from viewer.link import CollectorLink, LinkConfig
    from viewer.window import MainWindow

    app = QApplication.instance() or QApplication(["viewer_stall"])
    link = CollectorLink(LinkConfig(collector_url=url))
    window = MainWindow(link)
    window.snapshot_applied.connect(freeze_gc)  # as viewer.cli does
    if gc_off:
        window.snapshot_applied.connect(gc.disable)
    window.resize(1400, 900)
    window.show()
    link.start()
    result = Measurements()
    measuring = False

    class PaintCounter(QObject):
        def eventFilter(self, _watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802 - Qt's name
            if measuring and event is not None and event.type() == QEvent.Type.Paint:
                result.paints += 1
                if trace:
                    result.timeline.append((time.perf_counter(), "table-paint"))
            return False

    def on_batch(batch: NodeBatch) -> None:
        if trace and measuring:
            result.timeline.append((time.perf_counter(), f"batch-applied({len(batch.entries)})"))
        if measuring:
            result.batches += batch.messages > 0  # a batch's first slice carries its message count
            result.slices += 1
            result.batch_nodes += len(batch.entries)

    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if not (trace and measuring):
            return
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            took_ms = (time.perf_counter() - gc_started[0]) * 1000
            if took_ms > 2.0:
                result.timeline.append((time.perf_counter(), f"gc-gen{info['generation']}({took_ms:.0f}ms)"))

    gc.callbacks.append(on_gc)
    counter = PaintCounter()
    viewport = window.table.viewport()
    assert viewport is not None
    viewport.installEventFilter(counter)
    link.batch_ready.connect(on_batch)

    # Phase 1: wait for the table to fill (bounded), then let it settle.
    deadline = time.monotonic() + 60.0
    while window.model.rowCount() < nodes * 0.95 and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    ids = sorted(window.model.node_ids())
    if ids:
        window.select_node(ids[0])
    settle_deadline = time.monotonic() + settle_s
    while time.monotonic() < settle_deadline:
        app.processEvents()
        time.sleep(0.01)

    # Phase 2: measure inside app.exec(), as in real use.
    last_tick = time.perf_counter()
    started = last_tick
    thread_cpu_start = time.thread_time()
    process_cpu_start = time.process_time()
    feeder_cpu_start = process_cpu_s(feeder_pid)

    last_cpu = time.thread_time()

    def on_probe() -> None:
        nonlocal last_tick, last_cpu
        now = time.perf_counter()
        late_ms = max(0.0, (now - last_tick) * 1000.0 - PROBE_INTERVAL_MS)
        result.lateness_ms.append(late_ms)
        if trace:
            cpu = time.thread_time()
            result.timeline.append(
                (now, f"probe late {late_ms:.1f} ms (UI thread CPU in gap {1000 * (cpu - last_cpu):.1f} ms)")
            )
            last_cpu = cpu
        last_tick = now

    def on_rss() -> None:
        result.rss_samples.append((time.perf_counter() - started, rss_mib()))

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_INTERVAL_MS)
    probe.timeout.connect(on_probe)
    rss_timer = QTimer()
    rss_timer.setInterval(int(RSS_SAMPLE_S * 1000))
    rss_timer.timeout.connect(on_rss)
    measuring = True
    on_rss()
    probe.start()
    rss_timer.start()

    def finish() -> None:
        """Stop measuring, then time the window's close (it stops the link) inside the running loop."""
        nonlocal measuring
        probe.stop()
        rss_timer.stop()
        measuring = False
        on_rss()
        result.elapsed_s = time.perf_counter() - started
        result.ui_cpu_s = time.thread_time() - thread_cpu_start
        result.process_cpu_s = time.process_time() - process_cpu_start
        result.feeder_cpu_s = process_cpu_s(feeder_pid) - feeder_cpu_start
        result.rows = window.model.rowCount()
        close_started = time.perf_counter()
        window.close()
        result.close_s = time.perf_counter() - close_started
        result.link_thread_left = any(t.name == "nodewatch-viewer-link" for t in threading.enumerate())
        app.quit()

    QTimer.singleShot(int(duration_s * 1000), finish)
    if profile:  # where the UI thread's time goes (cProfile sees only this thread)
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(app.exec)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        app.exec()
    return result


def print_trace(timeline: Sequence[tuple[float, str]], late_ms: float = 16.0) -> None:
    """For each probe tick later than ``late_ms``, print the events since the previous tick."""
    previous_tick = 0.0
    pending: list[tuple[float, str]] = []
    for at, what in timeline:
        if what.startswith("probe late"):
            if float(what.split()[2]) > late_ms:
                events = ", ".join(f"{(t - previous_tick) * 1000:.1f}:{w}" for t, w in pending)
                print(f"{what}: [{events}]", file=sys.stderr)
            previous_tick, pending = at, []
        else:
            pending.append((at, what))


def run_control(duration_s: float) -> list[float]:
    """The same probe in an empty Qt app next to the same load: the machine's own lateness floor."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtCore import Qt, QTimer
    from PyQt6.QtWidgets import QApplication, QWidget

    app = QApplication.instance() or QApplication(["viewer_stall"])
    widget = QWidget()
    widget.show()
    lateness: list[float] = []
    last_tick = time.perf_counter()

    def on_probe() -> None:
        nonlocal last_tick
        now = time.perf_counter()
        lateness.append(max(0.0, (now - last_tick) * 1000.0 - PROBE_INTERVAL_MS))
        last_tick = now

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_INTERVAL_MS)
    probe.timeout.connect(on_probe)
    probe.start()
    QTimer.singleShot(int(duration_s * 1000), app.quit)
    app.exec()
    probe.stop()
    widget.close()
    return lateness


def report(  # noqa: PLR0917 - one call site
    result: Measurements,
    nodes: int,
    connected: int,
    duration_s: float,
    control: list[float],
    replay: bool = False,
    feeder_cpu_s: float | None = None,
) -> str:
    """The markdown table; ``feeder_cpu_s``: the replay stub's CPU over the run."""
    lateness = result.lateness_ms
    elapsed = max(result.elapsed_s, 1e-9)
    rss_start = result.rss_samples[0][1] if result.rss_samples else 0.0
    rss_end = result.rss_samples[-1][1] if result.rss_samples else 0.0
    source = (
        ("replayed nodes (bench/replay_stub.py, recorded from a real collector)", f"{nodes}", "")
        if replay
        else ("simulated agents (connected)", f"{nodes} ({connected})", "")
    )
    rows = [
        source,
        ("rows in the table", f"{result.rows}", ""),
        ("measured", f"{elapsed:.1f} s", f"{duration_s:g} s asked"),
        ("probe ticks", f"{len(lateness)}", f"{elapsed * 1000 / PROBE_INTERVAL_MS:.0f} ideal"),
        ("UI lateness p50", f"{percentile(lateness, 0.50):.2f} ms", ""),
        ("UI lateness p99", f"{percentile(lateness, 0.99):.2f} ms", "< 16 ms"),
        ("UI lateness max", f"{max(lateness, default=0.0):.2f} ms", "< 50 ms"),
        (
            "control: empty Qt app, same load, p50 / p99 / max",
            f"{percentile(control, 0.5):.2f} / {percentile(control, 0.99):.2f} / {max(control, default=0.0):.2f} ms",
            "the machine's floor",
        ),
        ("table repaints", f"{result.paints / elapsed:.1f} /s", "~10 /s max"),
        ("batches applied", f"{result.batches / elapsed:.1f} /s", "<= 10 /s"),
        ("nodes per batch (mean)", f"{result.batch_nodes / max(result.batches, 1):.0f}", ""),
        ("slices applied (one per event-loop turn)", f"{result.slices / elapsed:.1f} /s", ""),
        ("UI-thread CPU", f"{100 * result.ui_cpu_s / elapsed:.1f} %", "of one core"),
        ("viewer process CPU (all threads)", f"{100 * result.process_cpu_s / elapsed:.1f} %", "of one core"),
        ("RSS start -> end", f"{rss_start:.1f} -> {rss_end:.1f} MiB", ""),
        ("RSS slope", f"{slope_mib_per_min(result.rss_samples):+.2f} MiB/min", "flat"),
        ("window close (link stop)", f"{result.close_s * 1000:.1f} ms", "< 2000 ms"),
        ("network thread left after close", "yes" if result.link_thread_left else "no", "no"),
    ]
    if feeder_cpu_s is not None:
        rows.append(("replay stub CPU (its own process)", f"{100 * feeder_cpu_s / elapsed:.1f} %", "of one core"))
    lines = ["| metric | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--nodes", type=int, default=2000, help="simulated agents at 1 Hz (default 2000)")
    parser.add_argument("--replay", type=Path, default=None, help="feed the viewer from this replay_stub recording")
    parser.add_argument(
        "--replay-max-entries", type=int, default=0, help="the stub cuts updates into frames of at most N nodes"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (default 60)")
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="sys.setswitchinterval for the viewer (default: CPython's 5 ms; 1 ms was within noise of it)",
    )
    parser.add_argument("--control-duration", type=float, default=20.0, help="seconds of the empty-app control")
    parser.add_argument("--trace", action="store_true", help="print what happened before each late probe tick")
    parser.add_argument("--profile", action="store_true", help="print the UI thread's cProfile to stderr")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between the table filling and measuring")
    parser.add_argument(
        "--gc-off", action="store_true", help="an A/B: disable the cyclic GC once the fleet is loaded (after freeze_gc)"
    )
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.duration <= 0:
        parser.error("--nodes: expected >= 1 and --duration: expected > 0")
    if args.replay is not None and not args.replay.is_file():
        parser.error(f"--replay: expected a recording written by bench/replay_stub.py record, got {args.replay}")
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    switch_interval_s = sys.getswitchinterval()
    feeders: list[subprocess.Popen[str] | subprocess.Popen[bytes]] = []
    try:
        if args.replay is not None:
            stub, url, header = start_stub(args.replay, max_entries=args.replay_max_entries)
            feeders.append(stub)
            nodes = connected = int(header["nodes"])
            command = f"bench/viewer_stall.py --replay {args.replay} --duration {args.duration:g}"
            command += f" --replay-max-entries {args.replay_max_entries}" if args.replay_max_entries else ""
            command += " --gc-off" if args.gc_off else ""
        else:
            collector, url = start_collector()
            feeders.append(collector)
            fleet_duration_s = args.duration + args.settle + 180.0
            fleet_command = [sys.executable, str(REPO / "bench" / "fleet.py"), "--collector", url]
            fleet_command += ["--nodes", str(args.nodes), "--interval", "1", "--duration", str(fleet_duration_s)]
            feeders.insert(0, subprocess.Popen(fleet_command, cwd=REPO, stdout=subprocess.DEVNULL))
            nodes, connected = args.nodes, wait_for_fleet(url, args.nodes, timeout_s=120.0)
            command = f"bench/viewer_stall.py --nodes {args.nodes} --duration {args.duration:g}"
        control = run_control(min(args.duration, args.control_duration))
        result = run_viewer(
            url,
            nodes,
            args.duration,
            args.settle,
            profile=args.profile,
            trace=args.trace,
            feeder_pid=feeders[0].pid if args.replay is not None else None,
            gc_off=args.gc_off,
        )
        if args.trace:
            print_trace(result.timeline)
    finally:
        stop_all(feeders)
    print(f"\n`{command}`")
    print(f"(GIL switch interval {switch_interval_s * 1000:g} ms)\n")
    replay = args.replay is not None
    print(report(result, nodes, connected, args.duration, control, replay, result.feeder_cpu_s if replay else None))
    return 0


def stop_all(processes: Sequence[subprocess.Popen[str] | subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait (kill after 10 s)."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def process_cpu_s(pid: int | None) -> float:
    """User plus system CPU seconds of ``pid`` so far, from /proc (0 for None)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
