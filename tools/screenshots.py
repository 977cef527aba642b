"""Take the README's screenshots of the viewer from a real collector and a real (simulated) fleet.

Starts ``nodewatch collector`` on a free loopback port, 40 simulated agents
(``nodewatch.simulate.run_worker`` in a thread) of which a few die on purpose: three
close cleanly early (offline), three go silent early (offline after 10 intervals), and
two go silent just before the first picture (stale); and one real ``nodewatch agent``
sampling this machine (``this-machine``, with ``--top-processes``), whose slow-tier
details fill the detail tabs. Then it runs the real ``MainWindow`` at 1280x760 and
saves, into ``docs/screenshots/``:

- ``fleet.png``: the default problems-first order, stale and offline rows dimmed, hot
  figures marked (▲ warning, ▲▲ critical);
- ``detail.png``: the real agent's node selected: its state in words and the Charts tab;
- ``detail-disks.png``, ``detail-cpu.png``, ``detail-net.png``, ``detail-top.png``,
  ``detail-facts.png``: the other tabs of the same node, the pane widened as an operator would;
- ``detail-24h.png``: the same node's charts at the 24 h range, from the collector's store
  (seeded before the collector starts with a day of this node's 1-Hz samples, one 25-minute
  outage in it, through the store's own engine), in 1-minute averages with their min-max band;
- ``filter.png``: the filter ``cpu>50`` and "N of M shown";
- ``grouped.png``: rows grouped by the label ``role`` (four more real agents carry
  ``--label role=...``; the simulated nodes have no labels and fall under "(no role)");
- ``dark.png``: the same window under a dark system palette, charts included;
- ``disconnected.png``: the collector stopped: the banner and "as of HH:MM:SS".

The range picker and the group-by choice are driven from outside, as a user would: the
button named ``range-24h`` is clicked, the "Group by" box is set. A viewer without them
skips those two pictures and says so.

Qt renders offscreen (``QT_QPA_PLATFORM=offscreen``) unless a display is set, e.g. under
``xvfb-run``; the pictures are ``QWidget.grab()`` of the window either way.

    .venv/bin/python tools/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PyQt6.QtGui import QPalette

    from viewer.window import MainWindow

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
_URL_RE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
NODES = 40
INTERVAL_S = 1.0
# Early deaths are offline by the first picture (10 intervals of silence); late ones are still stale.
EARLY_DEATH_S = 3.0
LATE_DEATH_S = 13.0
FIRST_PICTURE_S = 16.0
REAL_NODE = "this-machine"
DETAIL_TABS = ("Disks", "CPU", "Net", "Top", "Facts")
# Real agents with labels, for the grouped picture: (node id, role).
LABELLED = (("db-1", "db"), ("db-2", "db"), ("cache-1", "cache"), ("ingress-1", "web"))
SEED_HOURS = 24
SEED_OUTAGE_H = (15.0, 15.42)  # hours into the seeded day: a 25-minute gap the chart must show as one


def start_collector(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """Run the collector CLI on a free loopback port on ``data_dir``; return the process and its URL."""
    # A fresh temporary data dir each run, not the user's store (nodes and gaps of earlier runs);
    # ERROR: the seeded node's registry row has no facts, which the collector says at WARNING.
    command = [
        *(sys.executable, "-m", "nodewatch", "collector", "--bind", "127.0.0.1:0"),
        *("--data-dir", str(data_dir), "--log-level", "ERROR"),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own CLI
    assert process.stdout is not None
    for line in process.stdout:
        match = _URL_RE.search(line)
        if match:
            return process, match.group(1)
    raise SystemExit("screenshots: the collector did not print its URL")


def start_agent(url: str, state_dir: Path, node_id: str = REAL_NODE, *extra: str) -> subprocess.Popen[str]:
    """Run a real agent on this machine as ``node_id``, its own state dir, quiet (the collector stops on purpose)."""
    command = [
        *(sys.executable, "-m", "nodewatch", "agent", "--collector", url, "--node-id", node_id),
        *("--state-dir", str(state_dir / node_id), "--log-level", "ERROR", *extra),
    ]
    return subprocess.Popen(command, cwd=REPO, text=True)  # noqa: S603 - our own CLI


def seed_history(data_dir: Path, node_id: str, now_at: float) -> None:
    """Write ``SEED_HOURS`` of 1-Hz samples of ``node_id`` ending a minute ago into a store, rolled up.

    A working day's shape: a nightly batch job at 02:00-03:30 and busier office hours, with
    noise; one outage (``SEED_OUTAGE_H``) has no samples at all. Written with the store's own
    engine and its clock moved along, so the 1-minute tier exists as a collector would build it.
    """
    from collector.store.model import Sample  # noqa: PLC0415 - the collector's parts only here
    from collector.store.sqlite_engine import SqliteEngine  # noqa: PLC0415

    rng = random.Random(16)  # noqa: S311 - a repeatable picture
    start_at = now_at - SEED_HOURS * 3600
    clock = [start_at]
    engine = SqliteEngine(data_dir, wall_clock=lambda: clock[0])
    batch: list[Sample] = []
    for second in range(SEED_HOURS * 3600 - 60):
        at = start_at + second
        hour = time.localtime(at).tm_hour + time.localtime(at).tm_min / 60
        if SEED_OUTAGE_H[0] <= second / 3600 < SEED_OUTAGE_H[1]:
            continue
        busy = 55.0 if 2.0 <= hour < 3.5 else 20.0 if 9.0 <= hour < 18.0 else 6.0
        cpu = min(100.0, max(0.0, rng.gauss(busy, 4.0)))
        rx = max(0.0, rng.gauss(busy * 40_000, 60_000))
        disk_write = max(0.0, rng.gauss(busy * 80_000, 50_000))
        values = (round(cpu, 2), round(45 + busy / 5 + rng.gauss(0, 0.3), 2), round(cpu / 25, 2))
        batch.append(Sample(node_id, "seeded", second + 1, at, (*values, rx, rx / 3, disk_write / 4, disk_write)))
        if len(batch) == 600:  # ten minutes per commit: the engine does not care, and it is quick
            clock[0] = at
            engine.write(batch, [])
            engine.maintain(clock[0])
            batch = []
    clock[0] = now_at
    engine.write(batch, [])
    while engine.maintain(now_at).more_work:
        pass
    engine.close()


def dark_palette() -> QPalette:
    """A dark palette like a desktop's dark mode (Fusion's roles)."""
    from PyQt6.QtGui import QColor, QPalette  # noqa: PLC0415

    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1e1e1e",
        QPalette.ColorRole.AlternateBase: "#262626",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#333333",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.Highlight: "#2f65ca",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#333333",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.PlaceholderText: "#9a9a9a",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    return palette


def run_fleet(url: str, stop: threading.Event) -> threading.Thread:
    """Run the simulated fleet in a thread until ``stop`` is set."""
    from nodewatch.simnodes import FleetConfig, NodeProfile, make_profiles  # noqa: PLC0415
    from nodewatch.simulate import run_worker  # noqa: PLC0415

    config = FleetConfig(
        collector=url,
        nodes=NODES,
        interval_s=INTERVAL_S,
        duration_s=600.0,
        processes=1,
        prefix="web",
        spread_addresses=False,
        token=None,
        dying=False,
    )
    profiles: list[NodeProfile] = make_profiles(config, random.Random(7))  # noqa: S311 - a repeatable picture
    for index, profile in enumerate(profiles[:8]):
        profile.dies_after_s = EARLY_DEATH_S if index < 6 else LATE_DEATH_S  # 6 early, 2 late
        profile.dies_cleanly = index < 3  # three say goodbye, the rest go silent
    for profile in profiles[8:12]:
        profile.base_cpu_percent = 85.0  # a few hot nodes for the CPU order and the filter

    async def fleet() -> None:
        task = asyncio.create_task(run_worker(config, profiles, 0))
        await asyncio.to_thread(stop.wait)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    thread = threading.Thread(target=asyncio.run, args=(fleet(),), name="screenshots-fleet", daemon=True)
    thread.start()
    return thread


class Camera:
    """Waits on the Qt event loop and saves pictures of one window."""

    def __init__(self, window: MainWindow, out: Path) -> None:
        self.window = window
        self.out = out
        self._resorted: list[bool] = []
        window.proxy.layoutChanged.connect(lambda *_args: self._resorted.append(True))

    def wait(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Run the event loop for ``seconds`` or until ``until()``."""
        from PyQt6.QtCore import QEventLoop, QTimer  # noqa: PLC0415

        deadline = time.monotonic() + seconds
        loop = QEventLoop()
        while time.monotonic() < deadline and not until():
            QTimer.singleShot(50, loop.quit)
            loop.exec()

    def after_resort(self) -> None:
        """Live sorts move rows once a second: wait for a move, when order and figures agree."""
        self._resorted.clear()
        self.wait(2.0, lambda: bool(self._resorted))

    def save(self, name: str) -> None:
        """Grab the window into ``out/name``."""
        path = self.out / name
        self.window.grab().save(str(path))
        print(f"screenshots: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def take_pictures(camera: Camera, collector: subprocess.Popen[str], stop: threading.Event) -> None:
    """The pictures, in order: fleet, detail (its tabs, 24 h), filter, grouped, dark, disconnected."""
    from PyQt6.QtGui import QCursor  # noqa: PLC0415

    window = camera.window
    # Under Xvfb the pointer starts mid-screen, over the table, which holds the row order ("paused"):
    # park it off the window, as a user reading the fleet would.
    QCursor.setPos(window.frameGeometry().right() + 40, window.frameGeometry().bottom() + 40)
    started = time.monotonic()
    camera.wait(30.0, lambda: window.model.rowCount() >= NODES)
    camera.wait(FIRST_PICTURE_S - (time.monotonic() - started))
    camera.after_resort()
    camera.save("fleet.png")
    if not window.select_node(REAL_NODE):  # no real agent: show a simulated one
        online = [node for node in window.proxy.node_ids() if window.model.node(node).status.state == "online"]  # type: ignore[union-attr]
        window.select_node(online[0])
    camera.wait(2.0)
    camera.save("detail.png")
    default_sizes = window.splitter.sizes()
    window.splitter.setSizes([520, 760])  # the operator drags the pane wider to read its tables
    for tab in DETAIL_TABS:
        window.detail.show_tab(tab)
        camera.wait(0.5)
        camera.save(f"detail-{tab.lower()}.png")
    window.detail.show_tab("Charts")
    take_range(camera, "24 h", "detail-24h.png")
    window.splitter.setSizes(default_sizes)
    window.filter_box.setText("cpu>50")
    camera.wait(1.0)
    camera.after_resort()
    camera.save("filter.png")
    window.filter_box.clear()
    window.select_node(REAL_NODE)  # the filter dropped it from the pane
    camera.wait(2.0)
    take_grouped(camera, "role", "grouped.png")
    take_dark(camera)
    collector.terminate()  # before the fleet stops: the last view is of a live fleet, alerts included
    collector.wait(timeout=10)
    stop.set()
    camera.wait(10.0, lambda: window.banner.isVisible() and "Retrying in" in window.banner.text())
    camera.wait(1.0)
    camera.save("disconnected.png")


def take_range(camera: Camera, label: str, name: str) -> None:
    """Click the range button ``label`` as a user would, wait for the charts to be drawn, save, go back to live."""
    from PyQt6.QtWidgets import QLabel, QToolButton  # noqa: PLC0415

    window = camera.window
    buttons = window.findChildren(QToolButton, f"range-{label.replace(' ', '')}")
    lives = window.findChildren(QToolButton, "range-15min")
    statuses = window.findChildren(QLabel, "range-status")
    if not (buttons and lives and statuses):
        print(f"screenshots: {name} skipped: this viewer has no range picker")
        return
    button, live, status = buttons[0], lives[0], statuses[0]
    button.click()
    camera.wait(10.0, lambda: status.text().startswith(label))  # "24 h · 1 min averages ...", not "loading"
    camera.wait(1.0)
    camera.save(name)
    live.click()
    camera.wait(1.0)


def take_grouped(camera: Camera, key: str, name: str) -> None:
    """Choose "Group by: ``key``" in the filter bar's box as a user would, save, then no groups again."""
    from PyQt6.QtWidgets import QComboBox  # noqa: PLC0415

    boxes = [box for box in camera.window.findChildren(QComboBox) if box.findData("") == 0 and box.count() > 0]
    box = next((b for b in boxes if b.itemText(0).startswith("Group by")), None)
    if box is None:
        print(f"screenshots: {name} skipped: this viewer cannot group rows")
        return
    camera.wait(5.0, lambda: box.findData(key) >= 0)  # offered once a node with the label is known
    if box.findData(key) < 0:
        print(f"screenshots: {name} skipped: no node has the label {key!r}")
        return
    box.setCurrentIndex(box.findData(key))
    camera.wait(1.0)
    camera.after_resort()
    camera.save(name)
    box.setCurrentIndex(0)
    camera.wait(1.0)


def take_dark(camera: Camera) -> None:
    """``dark.png``: the system palette turned dark; the window (charts included) follows it, then back."""
    from PyQt6.QtWidgets import QApplication  # noqa: PLC0415

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    light = app.palette()
    app.setPalette(dark_palette())
    camera.wait(1.5)
    camera.save("dark.png")
    app.setPalette(light)
    camera.wait(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    """Take the pictures and print where they went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="output directory")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtWidgets import QApplication  # noqa: PLC0415 - Qt only once the platform is chosen

    from viewer.link import CollectorLink, LinkConfig  # noqa: PLC0415
    from viewer.window import MainWindow  # noqa: PLC0415

    app = QApplication.instance() or QApplication(["nodewatch screenshots"])
    assert isinstance(app, QApplication)
    app.setStyle("Fusion")  # the style that follows a palette fully, as on a desktop in dark mode
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.TemporaryDirectory(prefix="nodewatch-screenshots-")
    data_dir = Path(workdir.name) / "collector-data"
    data_dir.mkdir()
    seed_history(data_dir, REAL_NODE, time.time())
    collector, url = start_collector(data_dir)
    stop = threading.Event()
    fleet = run_fleet(url, stop)
    state_dir = Path(workdir.name) / "agents"
    agents = [start_agent(url, state_dir, REAL_NODE, "--top-processes", "--label", "role=monitor")]
    agents += [start_agent(url, state_dir, node, "--label", f"role={role}") for node, role in LABELLED]
    window = MainWindow(CollectorLink(LinkConfig(collector_url=url)), collector_url=url)
    window.setWindowTitle(f"nodewatch — {url}")
    window.resize(1280, 760)
    window.show()
    window.link.start()
    try:
        take_pictures(Camera(window, args.out), collector, stop)
    finally:
        stop.set()
        window.close()
        for process in (*agents, collector):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        fleet.join(timeout=5)
        workdir.cleanup()
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
