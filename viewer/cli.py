"""``nodewatch viewer``: parse the command line, check for a display, run the window.

Environment (read here only): NODEWATCH_COLLECTOR and NODEWATCH_TOKEN are the
defaults of --collector and --token. Not here: any widget or network code.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

DEFAULT_COLLECTOR = "http://127.0.0.1:8765"
# How often Python gets control back from Qt's C++ event loop, so Ctrl-C closes the window.
_SIGNAL_POLL_MS = 200
EXIT_NO_DISPLAY = 3
# The cyclic GC's thresholds once the fleet is loaded (CPython's are 700, 10, 10): generation-0
# passes as usual, older generations never by themselves. A 10,000-node fleet replaces ~30 tracked
# objects per node each second, and a pass counts objects made minus freed, so the churn hardly moves
# the count: at (50,000, 50, 100) the young generation held up to a whole fleet's entries when a pass
# finally ran, 100-600 ms under load (bench/viewer_stall.py --trace), and at 700 the survivors (the
# rows' newest entries) reached generations 1 and 2, whose passes re-scan every row (60-460 ms).
# Here a pass sees only what was made since the last one (~1 ms, at most ~10 ms under load), and
# survivors are never re-scanned. The cost: a cycle that outlives its first pass is kept until an
# explicit gc.collect(); the fleet data has none (10,000 replayed nodes, 600 s: 360 -> 371 MiB, +0.4 MiB/min).
GC_THRESHOLDS: Final = (700, 1_000_000_000, 1_000_000_000)


@dataclass(frozen=True, slots=True)
class ViewerConfig:
    """Everything the viewer needs from the command line and environment."""

    collector_url: str
    token: str | None


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The viewer's argument parser; defaults come from ``env``."""
    parser = argparse.ArgumentParser(
        prog="nodewatch viewer",
        description="A desktop window that follows a nodewatch collector live (it subscribes; it never polls).",
    )
    parser.add_argument(
        "--collector",
        default=env.get("NODEWATCH_COLLECTOR") or None,
        metavar="URL",
        help=f"collector base URL, http(s)://HOST:PORT (env NODEWATCH_COLLECTOR; default: the last one used, "
        f"else {DEFAULT_COLLECTOR})",
    )
    parser.add_argument(
        "--token",
        default=env.get("NODEWATCH_TOKEN") or None,
        help="viewer bearer token, if the collector requires one (env NODEWATCH_TOKEN)",
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def parse_config(
    argv: Sequence[str], env: Mapping[str, str], remembered: Callable[[], str | None] = lambda: None
) -> tuple[ViewerConfig, str]:
    """Parse ``argv`` into a config and a log level; exits via ``parser.error`` on bad input.

    ``remembered`` gives the last collector URL used, asked only when neither flag nor env names one.
    """
    from viewer.link import subscribe_url  # noqa: PLC0415 - keep `--help` free of Qt and aiohttp

    parser = build_parser(env)
    args = parser.parse_args(argv)
    if args.collector is None:
        last = remembered()
        args.collector = DEFAULT_COLLECTOR if last is None or not _is_url(last) else last
    try:
        subscribe_url(args.collector)
    except ValueError as exc:
        parser.error(f"--collector: {exc} (e.g. http://127.0.0.1:8765)")
    token = args.token.strip() if args.token else None
    if args.token is not None and not token:
        parser.error("--token: expected a non-empty token, got only whitespace")
    return ViewerConfig(collector_url=args.collector, token=token), str(args.log_level)


def _is_url(text: str) -> bool:
    from viewer.link import subscribe_url  # noqa: PLC0415 - see parse_config

    try:
        subscribe_url(text)
    except ValueError:
        return False  # a remembered URL that no longer parses is forgotten, not an error
    return True


def _remembered_url() -> str | None:
    from viewer.remembered import remembered_url, user_settings  # noqa: PLC0415 - Qt only when needed

    return remembered_url(user_settings())


def has_display(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """True if Qt can open a window: macOS/Windows always, elsewhere X11, Wayland or an explicit QPA platform."""
    if platform.startswith(("darwin", "win")):
        return True
    return any(env.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the viewer until its window is closed; return the exit status."""
    env = dict(os.environ)
    config, log_level = parse_config(sys.argv[1:] if argv is None else argv, env, _remembered_url)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not has_display(env):
        print(
            "nodewatch viewer: no display: neither DISPLAY nor WAYLAND_DISPLAY is set.\n"
            "Run it in a desktop session (or over ssh -X), or set QT_QPA_PLATFORM=offscreen to run without a window.",
            file=sys.stderr,
        )
        return EXIT_NO_DISPLAY
    return _run(config)


def freeze_gc() -> None:
    """Move what is alive now (the fleet just loaded) out of the cyclic GC's reach; from then on, young passes only.

    bench/viewer_stall.py saw 35 ms full collections with 2,000 nodes loaded; our data
    has no reference cycles (refcounting frees it), so the GC need not re-scan it: only
    generation-0 passes run, each over what was made since the last (``GC_THRESHOLDS``).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _run(config: ViewerConfig) -> int:
    from PyQt6.QtCore import QTimer  # noqa: PLC0415 - Qt only once we know there is a display
    from PyQt6.QtWidgets import QApplication  # noqa: PLC0415

    from viewer.link import CollectorLink, LinkConfig  # noqa: PLC0415
    from viewer.remembered import user_settings  # noqa: PLC0415
    from viewer.window import MainWindow  # noqa: PLC0415

    app = QApplication.instance() or QApplication(["nodewatch viewer"])
    assert isinstance(app, QApplication)
    link = CollectorLink(LinkConfig(collector_url=config.collector_url, token=config.token))
    window = MainWindow(link, collector_url=config.collector_url, settings=user_settings())
    window.setWindowTitle(f"nodewatch — {config.collector_url}")
    window.snapshot_applied.connect(freeze_gc)
    # Ctrl-C or SIGTERM close the window like the user would (exit 0, link stopped). Python runs
    # signal handlers only when it has control, hence the idle timer.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(_SIGNAL_POLL_MS)
    window.show()
    link.start()
    status = app.exec()
    wake.stop()
    window.shutdown()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return status
