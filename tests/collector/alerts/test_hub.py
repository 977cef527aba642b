"""The collector's alert glue: which samples count, liveness and reboots from the cache, history, and saved state."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collector.alerting import AlertHub
from collector.alerts.routes import parse_alerts_config
from collector.alerts.statefile import EVENTS_NAME, MAX_EVENTS, STATE_NAME, AlertStateFile
from collector.cache import NodeCache
from tests.support.clock import FakeClock
from tests.support.messages import WALL_T0, facts, heartbeat, hello

CPU_RULE = {"name": "cpu_high", "condition": "cpu_percent > 90", "severity": "critical"}


@dataclass(eq=False)
class Viewer:
    """A subscriber as the hub sees one."""

    alerts: bool
    pending_alerts: deque[dict[str, Any]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Fleet:
    """A cache and a hub over it, with a wall clock the test moves, fed as the runtime feeds them."""

    def __init__(self, state_dir: Path | None = None, subscribers: tuple[Viewer, ...] = ()) -> None:
        self.wall = FakeClock(WALL_T0)
        self.mono = FakeClock()
        self.cache = NodeCache()
        config = parse_alerts_config({"rule": [CPU_RULE], "builtin": {"node_offline": {"for": "0s"}}})
        self.hub = AlertHub(
            config, {}, self.cache, subscribers, state_dir=state_dir, wall_clock=self.wall, clock=self.mono
        )
        self.conn = 0

    def connect(
        self, node_id: str = "web-1", boot_at: float = WALL_T0 - 86_400, labels: dict[str, str] | None = None
    ) -> None:
        """A hello (its facts carrying ``labels``), and the changes it made go to the hub."""
        self.conn += 1
        message = hello(node_id, f"inst-{self.conn}", sent_at=self.wall()).model_copy(
            update={"facts": facts().model_copy(update={"boot_time_at": boot_at, "labels": labels})}
        )
        self.hub.changed(self.cache.hello(message, self.conn, self.mono(), self.wall()).changes)

    def beat(self, seq: int, cpu: float, sampled_at: float | None = None, node_id: str = "web-1") -> None:
        """A heartbeat the cache took as the newest sample, handed to the hub."""
        at = self.wall() if sampled_at is None else sampled_at
        sample = heartbeat(seq, cpu=cpu, sampled_at=at, disks={"/": [100, 10, 90]})
        self.cache.heartbeat(node_id, self.conn, sample, self.mono(), self.wall())
        self.hub.sample(node_id, sample)

    def close(self, node_id: str = "web-1") -> None:
        """A clean close: offline at once."""
        self.hub.changed(self.cache.close(node_id, self.conn, clean=True, now=self.mono(), wall=self.wall()))

    def firing(self) -> list[tuple[str, str]]:
        """(alertname, node) of every firing alert."""
        return [
            (a["alertname"], a["node_id"]) for a in self.hub.service.api_alerts()["alerts"] if a["state"] == "firing"
        ]


class TestInputs:
    def test_a_live_sample_is_judged(self) -> None:
        """A fresh sample over the threshold fires a rule without `for` at once."""
        fleet = Fleet()
        fleet.connect()
        fleet.beat(1, cpu=99.0)
        assert fleet.firing() == [("cpu_high", "web-1")]

    def test_a_replayed_backlog_sample_is_not_judged(self) -> None:
        """A sample an agent replays ten minutes late neither fires nor resolves anything."""
        fleet = Fleet()
        fleet.connect()
        fleet.beat(1, cpu=99.0, sampled_at=WALL_T0 - 600)
        assert fleet.firing() == []

    def test_a_clean_close_fires_node_offline(self) -> None:
        """The cache's offline change reaches the engine: node_offline fires (for = 0s)."""
        fleet = Fleet()
        fleet.connect()
        fleet.close()
        assert fleet.firing() == [("node_offline", "web-1")]
        fleet.connect()
        assert fleet.firing() == []

    def test_alerts_carry_the_labels_of_the_latest_hello(self) -> None:
        """A node back with new labels (role=web, then role=db) is paged as db when it goes offline again.

        Regression: the engine took a node's labels from samples only, so the second page said web.
        """
        fleet = Fleet()
        fleet.connect(labels={"role": "web"})
        fleet.close()
        fleet.connect(labels={"role": "db"})
        fleet.close()
        fired = [e for e in fleet.hub.events if e["alertname"] == "node_offline" and e["new"] == "firing"]
        assert [e["labels"] for e in fired] == [{"role": "web"}, {"role": "db"}]

    def test_a_new_boot_time_is_a_reboot(self) -> None:
        """A hello whose boot time moved by an hour fires node_rebooted; the same boot time again does not."""
        fleet = Fleet()
        fleet.connect(boot_at=WALL_T0 - 86_400)
        fleet.close()
        fleet.connect(boot_at=WALL_T0 - 86_400)
        assert ("node_rebooted", "web-1") not in fleet.firing()
        fleet.close()
        fleet.connect(boot_at=WALL_T0 - 60)
        assert ("node_rebooted", "web-1") in fleet.firing()

    def test_a_node_restored_from_the_store_has_its_next_reboot_seen(self) -> None:
        """A node whose boot time the hub never saw (restored by the store) is learnt at its next hello."""
        fleet = Fleet()
        fleet.connect(boot_at=WALL_T0 - 86_400)
        fleet.hub.boot_times.clear()  # as after an upgrade: the cache knows the node, the alert state does not
        fleet.close()
        fleet.connect(boot_at=WALL_T0 - 86_400)  # same facts: a status change only
        assert fleet.hub.boot_times == {"web-1": WALL_T0 - 86_400}
        fleet.close()
        fleet.connect(boot_at=WALL_T0 - 60)
        assert ("node_rebooted", "web-1") in fleet.firing()

    def test_a_forgotten_node_ends_its_alerts(self) -> None:
        """When the cache forgets a node, its firing alerts resolve instead of staying stuck."""
        fleet = Fleet()
        fleet.connect()
        fleet.close()
        fleet.mono.advance(fleet.cache.forget_after_s + 1)
        fleet.hub.changed(fleet.cache.expire(fleet.mono(), fleet.wall()).changes)
        assert fleet.firing() == []
        assert fleet.hub.events[-1]["new"] == "resolved"


class TestOutputs:
    def test_opted_in_subscribers_get_transitions(self) -> None:
        """A viewer with ?alerts=1 is queued each transition and woken; one without is left alone."""
        asking, plain = Viewer(alerts=True), Viewer(alerts=False)
        fleet = Fleet(subscribers=(asking, plain))
        fleet.connect()
        fleet.beat(1, cpu=99.0)
        assert [(e["alertname"], e["new"]) for e in asking.pending_alerts] == [("cpu_high", "firing")]
        assert asking.wake.is_set()
        assert not plain.pending_alerts
        assert not plain.wake.is_set()

    def test_history_is_a_time_window_oldest_first(self) -> None:
        """History answers the events between from and to, oldest first, and says when a limit cut it."""
        fleet = Fleet()
        fleet.connect()
        for step in range(4):
            fleet.wall.advance(60)
            fleet.beat(step + 1, cpu=99.0 if step % 2 == 0 else 10.0)
        events, truncated = fleet.hub.history(WALL_T0 + 100, WALL_T0 + 200, 10)
        assert [(e["old"], e["new"]) for e in events] == [("firing", "resolved"), ("inactive", "firing")]
        assert not truncated
        events, truncated = fleet.hub.history(0, WALL_T0 + 1000, 1)
        assert len(events) == 1
        assert truncated


class TestPersistence:
    async def test_a_restart_keeps_firing_alerts_and_boot_times(self, tmp_path: Path) -> None:
        """Saved at shutdown, restored at start: the alert still fires, and a reboot while down is still seen."""
        fleet = Fleet(tmp_path)
        fleet.connect(boot_at=WALL_T0 - 86_400)
        fleet.beat(1, cpu=99.0)
        fleet.hub.save_now()
        assert (tmp_path / STATE_NAME).is_file()

        again = Fleet(tmp_path)
        again.hub.restore()
        assert again.firing() == [("cpu_high", "web-1")]
        assert [e["alertname"] for e in again.hub.events] == ["cpu_high"]
        again.connect(boot_at=WALL_T0 - 30)  # the node rebooted while the collector was down
        assert ("node_rebooted", "web-1") in again.firing()

    async def test_the_save_loop_writes_after_a_transition(self, tmp_path: Path) -> None:
        """With a data dir, a transition is on disk within a save interval, without waiting for shutdown."""
        fleet = Fleet(tmp_path)
        task = asyncio.create_task(fleet.hub.run())
        try:
            fleet.connect()
            fleet.beat(1, cpu=99.0)
            for _ in range(100):  # up to 5 s
                if (tmp_path / EVENTS_NAME).is_file():
                    break
                await asyncio.sleep(0.05)
            lines = (tmp_path / EVENTS_NAME).read_text(encoding="utf-8").splitlines()
            assert [json.loads(line)["new"] for line in lines] == ["firing"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        document = json.loads((tmp_path / STATE_NAME).read_text(encoding="utf-8"))
        assert document["format"] == 1
        assert document["boot_times"] == {"web-1": WALL_T0 - 86_400}

    @pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"format": 99}', '{"format": 1, "service": {"x": 1}}'])
    def test_a_bad_state_file_is_logged_and_ignored(
        self, tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A damaged alerts.json costs the saved alerts and one warning, never the collector's start."""
        (tmp_path / STATE_NAME).write_text(content, encoding="utf-8")
        fleet = Fleet(tmp_path)
        with caplog.at_level(logging.WARNING, logger="nodewatch.collector"):
            fleet.hub.restore()
        assert fleet.firing() == []
        assert "alerts:" in caplog.text

    def test_events_older_than_the_history_retention_go(self, tmp_path: Path) -> None:
        """Alert events are kept as long as the raw history (24 h): older ones leave memory and the restored log."""
        fleet = Fleet(tmp_path)
        fleet.connect()
        fleet.beat(1, cpu=99.0)
        fleet.hub.save_now()
        assert fleet.hub.retention_s == 24 * 3600
        fleet.wall.advance(25 * 3600)
        fleet.beat(2, cpu=10.0)  # resolves: a new event, and the day-old one is dropped
        assert [e["new"] for e in fleet.hub.events] == ["resolved"]
        again = Fleet(tmp_path)
        again.wall.advance(25 * 3600)
        again.hub.restore()
        assert list(again.hub.events) == []

    def test_no_data_dir_writes_nothing(self, tmp_path: Path) -> None:
        """An in-memory collector keeps alerts in memory: no file appears anywhere."""
        fleet = Fleet(None)
        fleet.connect()
        fleet.beat(1, cpu=99.0)
        fleet.hub.save_now()
        fleet.hub.restore()
        assert fleet.firing() == [("cpu_high", "web-1")]
        assert fleet.hub.file is None


class TestStateFile:
    def test_a_torn_last_line_is_skipped(self, tmp_path: Path) -> None:
        """A crash mid-append leaves half a line: the events before it are still read."""
        file = AlertStateFile(tmp_path)
        file.append_events([{"changed_at": 1.0, "new": "firing"}, {"changed_at": 2.0, "new": "resolved"}])
        with (tmp_path / EVENTS_NAME).open("a", encoding="utf-8") as handle:
            handle.write('{"changed_at": 3.0, "ne')
        assert [e["new"] for e in file.load_events()] == ["firing", "resolved"]

    def test_a_long_history_is_compacted(self, tmp_path: Path) -> None:
        """Past twice the kept events, the file is rewritten with the newest ones only."""
        file = AlertStateFile(tmp_path)
        file.append_events({"changed_at": float(i)} for i in range(2 * MAX_EVENTS + 5))
        events = file.load_events()
        assert len(events) == MAX_EVENTS
        assert events[-1]["changed_at"] == 2 * MAX_EVENTS + 4
        assert len((tmp_path / EVENTS_NAME).read_text(encoding="utf-8").splitlines()) == MAX_EVENTS

    def test_a_save_replaces_the_whole_document(self, tmp_path: Path) -> None:
        """Each save leaves exactly the last document and no temporary file."""
        file = AlertStateFile(tmp_path / "new-dir")
        file.save_state({"format": 1, "n": 1})
        file.save_state({"format": 1, "n": 2})
        assert file.load_state() == {"format": 1, "n": 2}
        assert sorted(p.name for p in (tmp_path / "new-dir").iterdir()) == [STATE_NAME]
