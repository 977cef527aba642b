"""Fixtures: a real collector app on a loopback port, with short timeouts so tests stay fast."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.config import CollectorConfig

# Short timeouts: tests check behaviour, never wall-clock speed, but must not wait the real 10 s hello timeout.
FAST = {
    "hello_timeout_s": 0.3,
    "flush_interval_s": 0.02,
    "send_timeout_s": 0.5,
    "close_timeout_s": 0.5,
    "ws_heartbeat_s": 5.0,
}

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    """Start a collector with FAST settings plus ``overrides`` and return a client for it."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(create_app(CollectorConfig(**{**FAST, **overrides})))
        return client

    return make
