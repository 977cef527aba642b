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
- ``filter.png``: the filter ``cpu>50`` and "N of M shown";
- ``dark.png``: the same window under a dark system palette, charts included;
- ``disconnected.png``: the collector stopped: the banner and "as of HH:MM:SS".

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


def start_collector() -> tuple[subprocess.Popen[str], str]:
    """Run the collector CLI on a free loopback port, keeping nothing on disk; return the process and its URL."""
    # --ephemeral: a fresh fleet each run, not the user's store (nodes and gaps of earlier runs).
    command = [
        *(sys.executable, "-m", "nodewatch", "collector", "--bind", "127.0.0.1:0"),
        *("--ephemeral", "--log-level", "WARNING"),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own CLI
    assert process.stdout is not None
    for line in process.stdout:
        match = _URL_RE.search(line)
        if match:
            return process, match.group(1)
    raise SystemExit("screenshots: the collector did not print its URL")


def start_agent(url: str, state_dir: str) -> subprocess.Popen[str]:
    """Run a real agent on this machine (node ``this-machine``), top processes included."""
    command = [
        *(sys.executable, "-m", "nodewatch", "agent", "--collector", url, "--node-id", REAL_NODE),
        *("--top-processes", "--state-dir", state_dir, "--log-level", "WARNING"),
    ]
    return subprocess.Popen(command, cwd=REPO, text=True)  # noqa: S603 - our own CLI


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
    """The four pictures, in order: fleet, detail, filter, disconnected."""
    window = camera.window
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
    window.splitter.setSizes(default_sizes)
    window.detail.show_tab("Charts")
    window.filter_box.setText("cpu>50")
    camera.wait(1.0)
    camera.after_resort()
    camera.save("filter.png")
    window.filter_box.clear()
    window.select_node(REAL_NODE)  # the filter dropped it from the pane
    camera.wait(2.0)
    take_dark(camera)
    stop.set()
    collector.terminate()
    collector.wait(timeout=10)
    camera.wait(10.0, lambda: window.banner.isVisible() and "Retrying in" in window.banner.text())
    camera.wait(1.0)
    camera.save("disconnected.png")


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
    collector, url = start_collector()
    stop = threading.Event()
    fleet = run_fleet(url, stop)
    state_dir = tempfile.TemporaryDirectory(prefix="nodewatch-screenshots-")
    agent = start_agent(url, state_dir.name)
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
        for process in (agent, collector):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        fleet.join(timeout=5)
        state_dir.cleanup()
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
