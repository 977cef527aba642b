"""The HTTP edge: bad bytes in headers get a 401, never a 500, and a bug in a handler is a counted JSON 500."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from collector.app import RUNTIME_KEY, create_app
from collector.cache import NodeCache
from tests.support.collector import fast_config

TOKENS = {"agent_tokens": frozenset({"agent-secret"}), "viewer_tokens": frozenset({"viewer-secret"})}


async def raw_get(port: int, path: str, authorization: bytes) -> tuple[int, bytes]:
    """Send one GET with a raw Authorization header value (any bytes) and return the status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Authorization: " + authorization + b"\r\n\r\n"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5.0)
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


class TestUndecodableAuthorization:
    @pytest.mark.parametrize("path", ["/api/v1/ingest", "/api/v1/subscribe", "/api/v1/nodes", "/metrics"])
    @pytest.mark.parametrize("value", [b"Bearer \xff", b"Bearer \xc3\x28agent-secret", b"\xff\xfe agent-secret"])
    async def test_non_utf8_header_is_a_counted_401(
        self, aiohttp_client: Any, caplog: pytest.LogCaptureFixture, path: str, value: bytes
    ) -> None:
        """A non-UTF-8 Authorization header is refused like a wrong token: 401, counted, no traceback."""
        client = await aiohttp_client(create_app(fast_config(**TOKENS)))
        with caplog.at_level(logging.DEBUG):
            status, body = await raw_get(client.port, path, value)
        assert status == 401
        assert b'"unauthorized"' in body
        stats = client.server.app[RUNTIME_KEY].stats
        assert sum(stats.auth_failures.values()) == 1
        assert not [r for r in caplog.records if r.exc_info], "expected no traceback in the log"


class ExplodingCache(NodeCache):
    """A node cache whose node list fails: stands in for any bug behind an HTTP handler."""

    def nodes(self, state: Any = None) -> Any:
        """Fail like a bug would."""
        raise ZeroDivisionError("injected fault")


class TestInternalErrors:
    async def test_a_bug_in_a_handler_is_a_counted_json_500(
        self, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A handler that raises answers that one request with a JSON 500, logs one line and counts it."""
        client = await aiohttp_client(create_app(fast_config(), cache=ExplodingCache()))
        with caplog.at_level(logging.INFO, logger="nodewatch.collector"):
            resp = await client.get("/api/v1/nodes")
        assert resp.status == 500
        assert (await resp.json())["error"] == "internal"
        lines = [r for r in caplog.records if r.name == "nodewatch.collector" and r.levelno >= logging.ERROR]
        assert len(lines) == 1
        assert "ZeroDivisionError" in lines[0].getMessage()
        assert client.server.app[RUNTIME_KEY].stats.protocol_errors[("http", "internal")] == 1
        assert (await client.get("/api/v1/health")).status == 200
