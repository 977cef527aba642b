"""Fixtures for the agent's tests: a real ingest server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .ingest_server import IngestServer


@pytest.fixture
async def ingest_server() -> AsyncIterator[IngestServer]:
    """A running minimal ingest endpoint on 127.0.0.1, port chosen by the OS."""
    server = IngestServer()
    await server.start()
    yield server
    await server.stop()
