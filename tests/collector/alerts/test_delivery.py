"""Delivery: real notifications through Apprise's JSON webhook to a loopback receiver, and retries that give up."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from collector.alerts.delivery import DeliveryWorker, apprise_senders, backoff_delays_s, silence_apprise_logs
from collector.alerts.notify import Notification
from collector.alerts.routes import AlertsConfig, parse_alerts_config
from collector.alerts.service import AlertService
from collector.alerts.settings import AlertConfigError

WAIT_S = 10.0  # generous on 2 busy cores; a passing test never waits this long
NODES = 50


class Receiver:
    """A webhook on loopback that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.arrived.set()
        return web.Response(text="ok")

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        """Wait until ``count`` notifications have arrived; return them all."""
        async with asyncio.timeout(WAIT_S):
            while len(self.bodies) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.bodies


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    """A running receiver and the Apprise URL that reaches it."""
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1", port=0)
    return hook, f"json://127.0.0.1:{server.port}/hook"


@pytest.fixture
def quiet_apprise() -> Iterator[None]:
    """Apprise's logger as ``main`` sets it, restored afterwards (loggers are process-wide)."""
    apprise_log = logging.getLogger("apprise")
    level = apprise_log.level
    silence_apprise_logs()
    yield
    apprise_log.setLevel(level)


def alerts_config(url: str) -> AlertsConfig:
    """Built-in rules; one route to ``url`` with short group timers (the defaults are 30 s and 5 min)."""
    route = {"name": "oncall", "urls": [url], "group_wait": "200ms", "group_interval": "200ms"}
    return parse_alerts_config({"route": [route]})


async def running(service: AlertService) -> asyncio.Task[None]:
    """Start the service's timer and delivery task."""
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel and await a service task, as its owner does at shutdown."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class TestRealDelivery:
    async def test_a_mass_outage_is_one_message_and_its_end_is_one_more(self, receiver: tuple[Receiver, str]) -> None:
        """50 nodes going offline send one grouped webhook listing them; their return sends one resolved webhook."""
        hook, url = receiver
        config = alerts_config(url)
        service = AlertService(config, apprise_senders(config.routes))
        task = await running(service)
        try:
            now = time.time()
            for i in range(NODES):
                service.liveness(f"node-{i:02d}", "offline", now)
            [firing] = await hook.wait_for(1)
            assert firing["title"] == f"[FIRING:{NODES}] node_offline"
            assert firing["type"] == "failure"
            assert "node-00" in firing["message"]
            assert "node-29" in firing["message"]
            assert f"and {NODES - 30} more" in firing["message"]
            saved = json.loads(json.dumps(service.to_state()))
        finally:
            await stop(task)

        # A restarted collector: the same alerts, not told again; their end is told once.
        again = AlertService(config, apprise_senders(config.routes))
        assert again.restore(saved) == []
        task = await running(again)
        try:
            now = time.time()
            for i in range(NODES):
                again.liveness(f"node-{i:02d}", "offline", now)  # the restored cache says so again
            for i in range(NODES):
                again.liveness(f"node-{i:02d}", "online", now)
            bodies = await hook.wait_for(2)
            assert len(bodies) == 2
            assert bodies[1]["title"] == "[RESOLVED] node_offline"
            assert bodies[1]["type"] == "success"
        finally:
            await stop(task)


class TestRetries:
    async def test_a_failing_route_is_retried_counted_and_logged_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """A target that keeps failing is tried 1 + retries times, counted as failed, and warned about once."""
        attempts: list[str] = []

        def refuse(notification: Notification) -> bool:
            attempts.append(notification.title)
            return False

        worker = DeliveryWorker({"r": refuse}, targets={"r": "json://hooks.example"}, retry_delays_s=(0.0, 0.0))
        task = asyncio.create_task(worker.run())
        caplog.set_level(logging.WARNING, "collector.alerts.delivery")
        worker.submit([Notification("r", ("a",), (), (), 0.0), Notification("r", ("b",), (), (), 0.0)])
        async with asyncio.timeout(WAIT_S):
            while worker.stats.failed < 2:  # noqa: ASYNC110 - the counter is what health shows; it has no event
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert attempts == ["[RESOLVED] a"] * 3 + ["[RESOLVED] b"] * 3
        assert (worker.stats.failed, worker.stats.retries, worker.stats.delivered) == (2, 4, 0)
        [warning] = caplog.records
        assert "route 'r' (json://hooks.example)" in warning.getMessage()

    async def test_a_failing_real_route_logs_no_secret(
        self, caplog: pytest.LogCaptureFixture, quiet_apprise: None
    ) -> None:
        """A webhook that refuses connections is reported as scheme and host only, at every log level."""
        with socket.socket() as probe:  # a port nobody listens on: bind, read it, close
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"json://admin:SECRET-PW@127.0.0.1:{port}/SECRET-PATH?token=SECRET-TOKEN"
        config = parse_alerts_config({"route": [{"name": "r", "urls": [url]}]})
        caplog.set_level(logging.DEBUG)
        worker = DeliveryWorker(
            apprise_senders(config.routes), targets={"r": config.routes[0].targets}, retry_delays_s=()
        )
        task = asyncio.create_task(worker.run())
        worker.submit([Notification("r", ("node_offline",), (), (), 0.0)])
        async with asyncio.timeout(WAIT_S):
            while worker.stats.failed < 1:  # noqa: ASYNC110 - the counter is what health shows; it has no event
                await asyncio.sleep(0.01)
        await stop(task)
        assert "SECRET" not in caplog.text
        assert "route 'r' (json://127.0.0.1): every attempt failed (1)" in caplog.text

    def test_a_full_queue_drops_instead_of_waiting(self) -> None:
        """Submitting never blocks ingest: past the bound, notifications are dropped and counted."""
        worker = DeliveryWorker({}, max_queued=1)
        worker.submit([Notification("r", (), (), (), 0.0)] * 3)
        assert (worker.queued, worker.stats.dropped, worker.stats.failed) == (1, 2, 2)

    def test_backoff_grows(self) -> None:
        """Retries wait longer each time."""
        assert list(backoff_delays_s(2.0, 4.0, 3)) == [2.0, 8.0, 32.0]

    def test_a_url_apprise_cannot_use_is_refused_at_start(self) -> None:
        """An unknown Apprise scheme stops the collector at start, naming the route and only scheme and host."""
        config = parse_alerts_config({"route": [{"name": "r", "urls": ["nosuch://hooks.example.com/SECRET"]}]})
        with pytest.raises(AlertConfigError) as caught:
            apprise_senders(config.routes)
        assert str(caught.value) == (
            "alert route 'r': key 'urls': expected a URL Apprise can send to, got nosuch://hooks.example.com"
        )
