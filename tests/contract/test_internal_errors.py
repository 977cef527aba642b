"""Contract point 15: a bug of the collector's closes that one peer with 1011, counted, in one log line.

The fault is injected by handing ``create_app`` a node cache that fails for one
node id; every other agent and viewer must not notice.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from collector.app import RUNTIME_KEY, create_app
from collector.cache import HeartbeatResult, NodeCache, NodeRecord
from shared.codec import encode
from shared.errors import CloseCode
from shared.messages import Heartbeat, HistoryRequest, Snapshot
from tests.support.collector import connect_agent, expect_rejection, fast_config, receive_message, send_heartbeat
from tests.support.messages import heartbeat, hello

BOOM = "boom"


class FaultyCache(NodeCache):
    """A node cache with a bug that only node ``boom`` trips over."""

    def heartbeat(
        self, node_id: str, conn: int, heartbeat: Heartbeat, now: float, wall: float, *, frame: bytes | None = None
    ) -> HeartbeatResult:
        """Fail for ``boom``'s heartbeats, as a bug would."""
        if node_id == BOOM:
            raise KeyError("injected fault")
        return super().heartbeat(node_id, conn, heartbeat, now, wall, frame=frame)

    def get(self, node_id: str) -> NodeRecord | None:
        """Fail for a lookup of ``boom`` (a viewer's history request), as a bug would."""
        if node_id == BOOM and self._history_trap:
            raise KeyError("injected fault")
        return super().get(node_id)

    _history_trap = False


def error_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The collector's ERROR lines."""
    return [r for r in caplog.records if r.name == "nodewatch.collector" and r.levelno >= logging.ERROR]


class TestInternalErrors:
    async def test_an_ingest_fault_closes_that_agent_only(
        self, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An agent whose heartbeat trips a bug gets an error and 1011; another agent's heartbeats still get acks."""
        client = await aiohttp_client(create_app(fast_config(), cache=FaultyCache()))
        healthy, _ = await connect_agent(client, hello("healthy", "i-1"))
        doomed, _ = await connect_agent(client, hello(BOOM, "i-2"))
        with caplog.at_level(logging.INFO, logger="nodewatch.collector"):
            await doomed.send_bytes(encode(heartbeat(1)))
            error, code, reason = await expect_rejection(doomed)
        assert (code, reason) == (CloseCode.INTERNAL_ERROR, "internal")
        assert error is not None
        assert error.reason == "internal"
        assert "injected fault" not in error.detail  # no internals on the wire
        lines = error_lines(caplog)
        assert len(lines) == 1
        assert "KeyError" in lines[0].getMessage()
        runtime = client.server.app[RUNTIME_KEY]
        assert runtime.stats.protocol_errors[("ingest", "internal")] == 1
        record = runtime.cache.get(BOOM)
        assert record is not None
        assert record.conn is None  # the cache heard the connection ended
        assert (await send_heartbeat(healthy, heartbeat(1))).seq == 1
        await healthy.close()

    async def test_a_subscribe_fault_closes_that_viewer_only(
        self, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A viewer whose request trips a bug gets an error and 1011; another viewer keeps its updates."""
        cache = FaultyCache()
        client = await aiohttp_client(create_app(fast_config(), cache=cache))
        calm = await client.ws_connect("/api/v1/subscribe")
        doomed = await client.ws_connect("/api/v1/subscribe")
        assert isinstance(await receive_message(calm), Snapshot)
        assert isinstance(await receive_message(doomed), Snapshot)
        cache._history_trap = True
        with caplog.at_level(logging.INFO, logger="nodewatch.collector"):
            await doomed.send_bytes(encode(HistoryRequest(node_id=BOOM)))
            error, code, reason = await expect_rejection(doomed)
        assert (code, reason) == (CloseCode.INTERNAL_ERROR, "internal")
        assert error is not None
        assert error.reason == "internal"
        assert len(error_lines(caplog)) == 1
        assert client.server.app[RUNTIME_KEY].stats.protocol_errors[("subscribe", "internal")] == 1
        agent, _ = await connect_agent(client, hello("seen"))
        update = await receive_message(calm)
        assert "seen" in {entry.status.node_id for entry in getattr(update, "nodes", [])}
        await agent.close()
        await calm.close()
