"""Click-to-drawn time of the viewer's history ranges (issue 16): "30 d" (1-hour tier) and "24 h" (1-minute tier).

1. Pre-fill a real SQLite store (``collector.store.sqlite_engine.SqliteEngine``, the store's own
   write and maintain calls) with ``--days`` of one node's 1-Hz samples, replayed hour by hour
   under a fake wall clock that ends now: each hour is written, then maintained at its end,
   exactly as the collector's writer thread does, so raw chunks (last 24 h), 1-minute and
   1-hour rollups are the ones a collector running that long would hold. ``--data-dir`` keeps
   the filled store for later runs (the replay takes ~20-40 s for 30 days on this machine).
2. Start the real collector CLI on loopback on that data dir.
3. Run the real ``MainWindow`` in this process (offscreen unless a display is set), select the
   node, and click "30 d" and "24 h" in turn ``--runs`` times each. The time is from the click
   to the charts painted: the ranged request through the link's network thread, the collector's
   query, the answer decoded, the curves and bands replaced, and a full paint of the five charts
   (``grab()``). Clicks are spaced ``PAUSE_S`` apart so the collector's pacing of ranged requests
   (2 a second after 10 in a row, docs/protocol.md 5.9) never delays one.

Run it under the bench lock (the replay is ~30 s of CPU):
    flock /work/notes/bench.lock timeout 900 .venv/bin/python bench/viewer_history.py --runs 7
Not here: UI lateness under live load (``bench/viewer_stall.py``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._procs import ProcessGroup
from bench._stats import median
from collector.store.model import NodeRow, Sample
from collector.store.sqlite_engine import SqliteEngine
from shared.messages import NodeFacts, NodeHistory

NODE = "bench-node"
INSTANCE = "bench-instance"
# Clicks further apart than the collector's ranged-request refill (0.5 s at 2/s): never paced.
PAUSE_S = 0.6
# One range's answer, decoded and drawn, must come well within this; a run that does not is reported.
RUN_TIMEOUT_S = 30.0
RANGES = ("30 d", "24 h")


def _values(at: float) -> tuple[float | None, ...]:
    """A day-shaped load: every series varies, so no rollup compresses to a constant."""
    phase = math.sin(at / 86400.0 * 2 * math.pi)
    wobble = (int(at) * 2654435761 % 1000) / 1000.0  # cheap deterministic noise
    return (
        40.0 + 30.0 * phase + 10.0 * wobble,
        55.0 + 5.0 * phase,
        1.0 + phase + wobble,
        4096.0 * (1.5 + phase) + 512.0 * wobble,
        2048.0 * (1.5 + phase),
        1024.0 * wobble,
        65536.0 * (1.0 + phase),
    )


def prefill(data_dir: Path, days: float, now: float) -> float:
    """Replay ``days`` of 1-Hz samples of ``NODE`` into ``data_dir`` through the store's own API; seconds taken."""
    started = time.perf_counter()
    hours = math.ceil(days * 24)
    first = math.floor(now / 3600.0) * 3600.0 - hours * 3600.0
    wall = [first]
    engine = SqliteEngine(data_dir, wall_clock=lambda: wall[0])
    try:
        facts = NodeFacts(
            hostname="bench", os="Linux", os_release="6.1", platform="Debian 12", arch="x86_64",
            cpu_count_logical=4, memory_total_bytes=8 << 30, agent_version="0.1.0", python_version="3.11",
        )  # fmt: skip
        frame = msgpack.packb(facts.model_dump(mode="python", exclude_none=True))
        seq = 1
        for hour in range(hours):
            start = first + hour * 3600.0
            samples = [Sample(NODE, INSTANCE, seq + k, start + k, _values(start + k)) for k in range(3600)]
            seq += len(samples)
            wall[0] = start + 3600.0
            last = start + 3599.0
            row = NodeRow(NODE, INSTANCE, frame, 1.0, "online", first, reason="hello", last_seen_at=last)
            engine.write(samples, [row])
            engine.maintain(wall[0])
        while engine.maintain(wall[0]).more_work:  # finish consolidating, as the writer would in its idle time
            pass
        print(f"prefill: {hours} h of 1-Hz samples ({seq - 1:,}) in {time.perf_counter() - started:.1f} s, "
              f"{engine.reader.stats()}", file=sys.stderr)  # fmt: skip
    finally:
        engine.close()
    return time.perf_counter() - started


@dataclass
class RangeRuns:
    """One range's measured runs."""

    label: str
    tier: str = ""
    points: int = 0
    total_ms: list[float] = field(default_factory=list)
    paint_ms: list[float] = field(default_factory=list)


class Clicker:
    """The real window on a collector, and a way to click a range and time it until painted."""

    def __init__(self, url: str) -> None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PyQt6.QtCore import QEventLoop
        from PyQt6.QtWidgets import QApplication

        from viewer.link import CollectorLink, LinkConfig
        from viewer.window import MainWindow

        self.app = QApplication.instance() or QApplication(["viewer_history"])
        self.link = CollectorLink(LinkConfig(collector_url=url))
        self.window = MainWindow(self.link)
        self.window.resize(1400, 900)
        self.window.show()
        self.link.start()
        self.loop = QEventLoop()
        self.marks: dict[str, float] = {}
        self.answer: tuple[str, int] = ("", 0)
        # Connected after the window's own slot: the curves are replaced when ``_on_history`` runs.
        self.link.history_ready.connect(self._on_history)

    def wait_until(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Run the Qt event loop until ``done()`` or ``timeout_s``."""
        from PyQt6.QtCore import QTimer

        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            QTimer.singleShot(20, self.loop.quit)
            self.loop.exec()

    def open_node(self) -> None:
        """Wait for the snapshot and show ``NODE`` on the Charts tab."""
        self.wait_until(lambda: self.window.model.connected and self.window.model.row_of(NODE) is not None, 30.0)
        if not self.window.select_node(NODE):
            raise RuntimeError(f"expected {NODE!r} in the collector's snapshot")
        self.wait_until(lambda: self.window.detail.node_id == NODE, 10.0)
        self.window.detail.show_tab("Charts")

    def click(self, label: str) -> tuple[float, float]:
        """Click ``label``; (click to painted, paint alone) in ms."""
        self.marks.clear()
        time.sleep(PAUSE_S)
        self.app.processEvents()
        self.marks["clicked"] = time.perf_counter()
        self.window.detail.picker.button(label).click()
        self.wait_until(lambda: "drawn" in self.marks, RUN_TIMEOUT_S)
        if "drawn" not in self.marks:
            raise RuntimeError(f"{label}: not drawn in {RUN_TIMEOUT_S} s: {self.window.detail.picker.status.text()!r}")
        marks = self.marks
        return (marks["drawn"] - marks["clicked"]) * 1000.0, (marks["drawn"] - marks["data"]) * 1000.0

    def click_live(self) -> None:
        """Back to "15 min", so the next click of a range is a new pick."""
        self.window.detail.picker.button("15 min").click()

    def _on_history(self, reply: NodeHistory) -> None:
        if reply.range is None or "clicked" not in self.marks or "drawn" in self.marks:
            return
        self.marks["data"] = time.perf_counter()
        self.window.detail.overview.grab()  # a full paint of the five charts, as the screen would get
        self.marks["drawn"] = time.perf_counter()
        self.answer = (reply.range.tier, len(reply.range.at))
        self.loop.quit()

    def close(self) -> None:
        """Stop the link and close the window."""
        self.window.shutdown()
        self.window.close()


def measure(url: str, runs: int) -> list[RangeRuns]:
    """Click each of ``RANGES`` in turn ``runs`` times in a real window on ``url``; their times."""
    clicker = Clicker(url)
    results = {label: RangeRuns(label) for label in RANGES}
    try:
        clicker.open_node()
        for _ in range(runs):
            for label in RANGES:
                total_ms, paint_ms = clicker.click(label)
                result = results[label]
                result.total_ms.append(total_ms)
                result.paint_ms.append(paint_ms)
                result.tier, result.points = clicker.answer
                clicker.click_live()
    finally:
        clicker.close()
    return list(results.values())


def table(results: Sequence[RangeRuns], days: float, prefill_s: float | None) -> str:
    """The Markdown table for the README."""
    filled = "reused" if prefill_s is None else f"{prefill_s:.0f} s"
    lines = [
        f"One node, {days:g} days of 1-Hz history in a real SQLite store (replayed through the store's API: {filled}); "
        "real collector CLI on loopback, real window offscreen. Click to painted, ms:",
        "",
        "| range | tier | points | median ms | paint ms (median) | all runs, ms |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        runs = ", ".join(f"{ms:.0f}" for ms in r.total_ms)
        lines.append(
            f"| {r.label} | {r.tier} | {r.points:,} | {median(r.total_ms):.0f} | {median(r.paint_ms):.0f} | {runs} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Pre-fill (or reuse) a store, serve it, click the ranges, print the table."""
    parser = argparse.ArgumentParser(description="Click-to-drawn time of the viewer's 30 d and 24 h history ranges.")
    parser.add_argument("--runs", type=int, default=7, help="clicks per range (default 7)")
    parser.add_argument("--days", type=float, default=30.0, help="history to pre-fill, days (default 30)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep (or reuse, if filled) the store here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs: expected at least 1, got {args.runs}")
    if args.days <= 1:
        parser.error(f"--days: expected more than 1 (the 24 h range needs a full day), got {args.days}")
    with tempfile.TemporaryDirectory(prefix="viewer-history-") as tmp:
        group = ProcessGroup(Path(tmp))
        data_dir = args.data_dir or group.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        reuse = (data_dir / "nodewatch.db").exists()
        prefill_s = None if reuse else prefill(data_dir, args.days, time.time())
        try:
            collector = group.collector(*(["--data-dir", str(data_dir)] if args.data_dir else []))
            results = measure(collector.url, args.runs)
        finally:
            group.close()
    print(table(results, args.days, prefill_s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
