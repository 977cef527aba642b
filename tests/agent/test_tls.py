"""The agent over wss:// against a real TLS collector on loopback: a private CA via SSL_CERT_FILE, refusals."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from agent.config import AgentConfig
from agent.pusher import Outcome
from agent.runner import Agent
from collector.app import RUNTIME_KEY, create_app
from collector.config import CollectorConfig

from .certs import Certs, have_openssl, make_ca
from .ingest_server import running, wait_until

pytestmark = pytest.mark.skipif(not have_openssl(), reason="openssl CLI not installed; it makes the test CA")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A private CA and a server certificate for 127.0.0.1 signed by it, plus an unrelated self-signed one."""
    return make_ca(tmp_path_factory.mktemp("tls"))


def server_context(cert: Path, key: Path, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if max_version is not None:  # an old server: allow what OpenSSL 3 would refuse by itself, so the agent decides
        with warnings.catch_warnings():  # ssl warns that TLS 1.0/1.1 are deprecated: that is the point here
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = max_version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@asynccontextmanager
async def tls_collector(context: ssl.SSLContext) -> AsyncIterator[tuple[web.Application, int]]:
    """The real collector app serving https and wss on 127.0.0.1 with ``context``."""
    app = create_app(CollectorConfig(host="127.0.0.1", port=0))
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield app, runner.addresses[0][1]
    finally:
        await runner.cleanup()


def make_agent(port: int) -> tuple[Agent, list[tuple[float, Outcome]]]:
    """A wss:// agent sampling every 0.1 s, recording every retry it schedules."""
    retries: list[tuple[float, Outcome]] = []
    config = AgentConfig(ingest_url=f"wss://127.0.0.1:{port}/api/v1/ingest", node_id="tls-node", interval_s=0.1)
    agent = Agent(config, random_source=lambda: 0.5, on_retry=lambda d, o: retries.append((d, o)))
    return agent, retries


def history_seqs(app: web.Application) -> list[int]:
    record = app[RUNTIME_KEY].cache.get("tls-node")
    return [] if record is None else list(record.history.to_history().seq)


class TestWss:
    async def test_private_ca_from_ssl_cert_file_is_trusted(
        self, certs: Certs, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With SSL_CERT_FILE naming the fleet's CA, the agent pushes over wss:// and closes 1000 on stop."""
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
        async with tls_collector(server_context(certs.server_cert, certs.server_key)) as (app, port):
            agent, retries = make_agent(port)
            async with running(agent):
                await wait_until(lambda: len(history_seqs(app)) >= 5)
            await wait_until(lambda: not app[RUNTIME_KEY].agents, timeout_s=2.0)
            record = app[RUNTIME_KEY].cache.get("tls-node")
            assert record is not None
        seqs = history_seqs(app)
        assert seqs == list(range(1, len(seqs) + 1))
        assert retries == []
        assert agent.pusher.last_outcome is not None
        assert agent.pusher.last_outcome.close_code == 1000

    async def test_untrusted_certificate_is_refused(self, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
        """A collector whose certificate no trusted CA signed never sees a hello; the log says why."""
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
        async with tls_collector(server_context(certs.untrusted_cert, certs.untrusted_key)) as (app, port):
            agent, retries = make_agent(port)
            async with running(agent):
                await wait_until(lambda: bool(retries))
            assert "tls-node" not in app[RUNTIME_KEY].cache
        assert "CERTIFICATE_VERIFY_FAILED" in retries[0][1].reason
        assert agent.pusher.connections == 0

    async def test_without_the_ca_the_private_certificate_is_refused(self, certs: Certs) -> None:
        """Without SSL_CERT_FILE the system store applies, and it does not hold the fleet's private CA."""
        async with tls_collector(server_context(certs.server_cert, certs.server_key)) as (app, port):
            agent, retries = make_agent(port)
            async with running(agent):
                await wait_until(lambda: bool(retries))
            assert "tls-node" not in app[RUNTIME_KEY].cache
        assert "CERTIFICATE_VERIFY_FAILED" in retries[0][1].reason

    async def test_tls_below_1_2_is_refused(self, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
        """A collector that offers at most TLS 1.1 is refused, although its certificate is trusted."""
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
        context = server_context(certs.server_cert, certs.server_key, max_version=ssl.TLSVersion.TLSv1_1)
        async with tls_collector(context) as (app, port):
            agent, retries = make_agent(port)
            async with running(agent):
                await wait_until(lambda: bool(retries))
            assert "tls-node" not in app[RUNTIME_KEY].cache
        assert "SSL" in retries[0][1].reason
        assert agent.pusher.connections == 0


def loaded_by_the_agent(names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` a fresh interpreter holds after importing the agent's program."""
    code = (
        "import json, sys, agent.cli, agent.runner, agent.pusher\n"
        f"print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded: list[str] = json.loads(result.stdout)
    return loaded


class TestFootprint:
    def test_a_ws_agent_loads_no_ssl_asyncio_or_aiohttp(self) -> None:
        """The agent's modules import neither ssl nor asyncio nor aiohttp nor pydantic: a ws:// node pays for none."""
        assert loaded_by_the_agent(("ssl", "asyncio", "aiohttp", "pydantic")) == []

    def test_a_ws_agent_maps_no_libcrypto(self) -> None:
        """No hashlib (OpenSSL's libcrypto, ~3.7 MB RSS) in a ws:// agent: only wss:// pays for OpenSSL."""
        assert loaded_by_the_agent(("hashlib", "_hashlib")) == []
