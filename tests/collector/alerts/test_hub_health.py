"""``AlertHub.health``: the alerts block of ``/api/v1/health``, the service's counts without a recount per call.

Health is polled (a load balancer, bench/e2e.py at 50 Hz); the service's own count sorts every node's
alerts each time. Not here: the engine's rules (tests/collector/alerts/test_engine.py).
"""

from __future__ import annotations

from pathlib import Path

from collector.alerting import AlertHub
from collector.alerts.routes import parse_alerts_config
from collector.cache import NodeCache
from tests.support.clock import FakeClock
from tests.support.messages import WALL_T0, heartbeat, hello

CPU_RULE = {"name": "cpu_high", "condition": "cpu_percent > 90", "severity": "critical"}


class Alerts:
    """A cache and a hub over it, fed as the runtime feeds them, with a wall clock the test moves."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.wall = FakeClock(WALL_T0)
        self.mono = FakeClock()
        self.cache = NodeCache()
        config = parse_alerts_config({"rule": [CPU_RULE]})
        self.hub = AlertHub(config, {}, self.cache, (), state_dir=state_dir, wall_clock=self.wall, clock=self.mono)

    def connect(self, node_id: str, conn: int) -> None:
        """A hello whose changes reach the hub."""
        self.hub.changed(
            self.cache.hello(hello(node_id, f"inst-{conn}", sent_at=self.wall()), conn, 0.0, self.wall()).changes
        )

    def beat(self, node_id: str, conn: int, seq: int, cpu: float) -> None:
        """A live sample of ``node_id`` judged by the hub."""
        sample = heartbeat(seq, cpu=cpu, sampled_at=self.wall())
        self.cache.heartbeat(node_id, conn, sample, float(seq), self.wall())
        self.hub.sample(node_id, sample)


class TestHealth:
    def test_the_firing_count_follows_alerts_as_they_fire_and_resolve(self) -> None:
        """Two nodes fire, one resolves, one is forgotten: each time health says what the service says."""
        alerts = Alerts()
        alerts.connect("web-1", 1)
        alerts.connect("web-2", 2)
        assert alerts.hub.health() == alerts.hub.service.health()
        assert alerts.hub.health()["firing"] == 0
        alerts.beat("web-1", 1, 1, cpu=99.0)
        alerts.beat("web-2", 2, 1, cpu=99.0)
        assert alerts.hub.health()["firing"] == 2
        alerts.wall.advance(1.0)
        alerts.beat("web-1", 1, 2, cpu=5.0)
        assert alerts.hub.health() == alerts.hub.service.health()
        assert alerts.hub.health()["firing"] == 1
        alerts.hub.changed(alerts.cache.close("web-2", 2, clean=False, now=3.0, wall=alerts.wall()))
        alerts.hub.changed(alerts.cache.forget("web-2"))
        assert alerts.hub.health() == alerts.hub.service.health()
        assert alerts.hub.health()["firing"] == 0

    def test_a_restart_counts_the_alerts_it_restored(self, tmp_path: Path) -> None:
        """Alerts restored from the state file count as firing at once, though no transition came with them."""
        before = Alerts(tmp_path)
        before.connect("web-1", 1)
        before.beat("web-1", 1, 1, cpu=99.0)
        assert before.hub.health()["firing"] == 1
        before.hub.save_now()
        after = Alerts(tmp_path)
        assert after.hub.health()["firing"] == 0
        after.hub.restore()
        assert after.hub.health()["firing"] == 1
        assert after.hub.health() == after.hub.service.health()
