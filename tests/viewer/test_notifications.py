"""Desktop notifications of alerts: off by default, remembered, said when there is no tray, and a storm is one message.

The alerts come from the wire: a real collector CLI with a real rule file, and 50 agents over
real ingest websockets (``AgentSwarm``) whose CPU crosses the rule's threshold and back.
Where the message goes is passed in (the desktop's notification service is the one fake).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QSystemTrayIcon
from pytestqt.qtbot import QtBot

from tests.support.processes import CollectorProc, ProcessGroup
from tests.support.swarm import AgentSwarm
from tests.viewer.helpers import start_window
from viewer.alertbook import AlertChange
from viewer.alertwire import AlertKey
from viewer.notifications import NO_TRAY_TEXT, SETTINGS_KEY, Note, NotificationThrottle, Notifier
from viewer.window import MainWindow

pytestmark = pytest.mark.slow
WAIT_MS = 20_000
STORM = 50
RULES = """
[[alerts.rule]]
name = "cpu_high"
condition = "cpu_percent > 50"
summary = "CPU above 50 %"
"""


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProc]:
    """A real collector CLI whose rule fires above 50 % CPU."""
    group = ProcessGroup(tmp_path)
    path = tmp_path / "collector.toml"
    path.write_text(RULES, encoding="utf-8")
    yield group.collector("--alerts-config", str(path), "--log-level", "WARNING")
    group.close()


@pytest.fixture
def swarm(collector: CollectorProc) -> Iterator[AgentSwarm]:
    """``STORM`` agents, each with one calm heartbeat."""
    agents = AgentSwarm(collector.url)
    for n in range(STORM):
        agents.connect(f"node-{n:02d}")
        agents.beat(f"node-{n:02d}", cpu_percent=10.0)
    yield agents
    agents.close_all()


def settings_in(tmp_path: Path) -> QSettings:
    """Settings in a temporary file, as the user's would be."""
    return QSettings(str(tmp_path / "viewer.conf"), QSettings.Format.IniFormat)


def listen(win: MainWindow, tmp_path: Path, *, on: bool) -> list[tuple[str, str]]:
    """What a notifier on ``win``'s alerts panel tells (gathering 0.5 s, then one message a second at most)."""
    told: list[tuple[str, str]] = []
    notifier = Notifier(
        settings_in(tmp_path),
        show=lambda title, body: told.append((title, body)),
        throttle=NotificationThrottle(gather_s=0.5, min_gap_s=1.0),
        parent=win,
    )
    notifier.action.setChecked(on)
    win.parts.alerts.changes.connect(notifier.notify)
    return told


class TestNotifications:
    def test_off_by_default_and_remembered(self, qtbot: QtBot, tmp_path: Path) -> None:
        """A first run tells nothing; turning notifications on is remembered by the next run."""
        settings = settings_in(tmp_path)
        told: list[tuple[str, str]] = []
        first = Notifier(settings, show=lambda title, body: told.append((title, body)))
        assert not first.enabled
        first.action.setChecked(True)
        assert settings.value(SETTINGS_KEY) in {True, "true"}
        assert Notifier(settings_in(tmp_path), show=lambda _t, _b: None).enabled

    def test_window_says_when_there_is_no_tray(self, qtbot: QtBot, collector: CollectorProc) -> None:
        """Without a system tray (as here, offscreen) the View menu's toggle says notifications cannot show."""
        win = start_window(qtbot, collector.url, 0)
        notifier = win.parts.notifier
        if QSystemTrayIcon.isSystemTrayAvailable():
            pytest.skip("this desktop has a system tray")
        assert not notifier.available
        assert notifier.action.text() == NO_TRAY_TEXT
        menu_bar = win.menuBar()
        assert menu_bar is not None
        texts = [action.text() for menu in menu_bar.actions() if (m := menu.menu()) for action in m.actions()]
        assert NO_TRAY_TEXT in texts
        win.close()

    def test_a_storm_is_one_message_and_resolving_another(
        self, qtbot: QtBot, collector: CollectorProc, swarm: AgentSwarm, tmp_path: Path
    ) -> None:
        """50 nodes crossing a threshold together are one desktop message, their recovery one more; off, none."""
        win = start_window(qtbot, collector.url, STORM)
        told = listen(win, tmp_path, on=True)
        told_while_off = listen(win, tmp_path / "off", on=False)
        for n in range(STORM):
            swarm.beat(f"node-{n:02d}", cpu_percent=95.0)
        qtbot.waitUntil(lambda: len(told) == 1, timeout=WAIT_MS)
        title, body = told[0]
        assert title == f"nodewatch alerts: {STORM} firing"
        assert body.splitlines()[0].startswith("FIRING cpu_high on node-")
        assert body.splitlines()[-1] == f"and {STORM - 5} more"
        assert len(win.parts.alerts.shown_alerts()) == STORM

        for n in range(STORM):
            swarm.beat(f"node-{n:02d}", cpu_percent=5.0)
        qtbot.waitUntil(lambda: len(told) == 2, timeout=WAIT_MS)
        assert told[1][0] == f"nodewatch alerts: {STORM} resolved"
        qtbot.wait(1500)  # past the gap: nothing more to tell
        assert len(told) == 2
        assert told_while_off == []
        win.close()


class TestNotificationThrottle:
    @staticmethod
    def changes(count: int, new: str = "firing") -> list[AlertChange]:
        """``count`` changes of one rule on nodes n0, n1, ..."""
        return [AlertChange(AlertKey("cpu_high", f"n{i}", ""), "warning", new, "hot") for i in range(count)]

    def test_first_news_waits_to_gather_company(self) -> None:
        """News is told ``gather_s`` after it first came, together with what came meanwhile."""
        throttle = NotificationThrottle(gather_s=2.0, min_gap_s=30.0)
        throttle.add(self.changes(1), now_s=100.0)
        assert throttle.take(101.9) is None
        throttle.add(self.changes(3, "resolved"), now_s=101.0)
        note = throttle.take(102.0)
        assert note is not None
        assert note.title == "nodewatch alerts: 1 firing, 3 resolved"

    def test_one_change_is_its_own_title(self) -> None:
        """A single change says what it is in the title."""
        throttle = NotificationThrottle(gather_s=0.0)
        throttle.add(self.changes(1), now_s=5.0)
        assert throttle.take(5.0) == Note("FIRING cpu_high on n0: hot", "")

    def test_later_news_waits_for_the_gap(self) -> None:
        """After a message, the next waits ``min_gap_s``: a flapping fleet is not a bubble a second."""
        throttle = NotificationThrottle(gather_s=1.0, min_gap_s=30.0)
        throttle.add(self.changes(1), now_s=0.0)
        assert throttle.take(1.0) is not None
        throttle.add(self.changes(2), now_s=5.0)
        assert throttle.due_at() == 31.0
        assert throttle.take(30.9) is None
        assert throttle.take(31.0) is not None
        assert throttle.due_at() is None
