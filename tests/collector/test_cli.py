"""Tests of ``nodewatch collector`` as a real subprocess: start-up line, SIGTERM, bind refusal, TLS; and promtool."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from collector.cli import FD_HEADROOM, build_parser, config_from_args, connection_limit, main
from collector.config import CollectorConfig
from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack
from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import heartbeat, hello

REPO = Path(__file__).resolve().parents[2]
PIPE = asyncio.subprocess.PIPE
OPENSSL_ARGS = (
    *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
    *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
)


async def start_collector(*args: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    """Run ``python -m nodewatch collector --bind 127.0.0.1:0 ARGS`` and return it with its printed base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodewatch",
        "collector",
        "--bind",
        "127.0.0.1:0",
        # Never the default data dir (/var/lib/nodewatch as root): tests share no store.
        *([] if "--data-dir" in args else ["--ephemeral"]),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    async with asyncio.timeout(15):
        line = (await proc.stdout.readline()).decode()
    assert line.startswith("nodewatch collector listening on "), line
    url = line.split()[4]
    return proc, url


@pytest.fixture
async def procs() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class TestProcess:
    async def test_sigterm_closes_websockets_1001_and_exits_0_within_2s(
        self, procs: list[asyncio.subprocess.Process]
    ) -> None:
        """SIGTERM closes a connected agent with 1001 and the process exits 0 within 2 s."""
        proc, url = await start_collector()
        procs.append(proc)
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/api/v1/health") as resp:
                assert (await resp.json())["status"] == "ok"
            agent = await session.ws_connect(url.replace("http", "ws") + "/api/v1/ingest")
            await agent.send_bytes(encode(hello()))
            assert isinstance(decode((await agent.receive(timeout=5)).data, COLLECTOR_LIMITS), Ack)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            msg = await agent.receive(timeout=3)
            async with asyncio.timeout(2.5):
                returncode = await proc.wait()
            elapsed_s = time.monotonic() - start
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        assert returncode == 0
        assert elapsed_s < 2.0

    async def test_tls_serves_https_and_wss(self, tmp_path: Path, procs: list[asyncio.subprocess.Process]) -> None:
        """With --tls-cert/--tls-key the collector speaks https and wss to a client that trusts the cert."""
        if shutil.which("openssl") is None:
            pytest.skip("openssl CLI not installed; needed to make a self-signed test certificate")
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        openssl = await asyncio.create_subprocess_exec(
            *OPENSSL_ARGS, "-keyout", str(key), "-out", str(cert), stdout=PIPE, stderr=PIPE
        )
        async with asyncio.timeout(60):
            _, err = await openssl.communicate()
        assert openssl.returncode == 0, err.decode()
        proc, url = await start_collector("--tls-cert", str(cert), "--tls-key", str(key))
        procs.append(proc)
        assert url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/api/v1/health", ssl=context) as resp:
                assert resp.status == 200
            agent = await session.ws_connect(url.replace("https", "wss") + "/api/v1/ingest", ssl=context)
            await agent.send_bytes(encode(hello()))
            assert isinstance(decode((await agent.receive(timeout=5)).data, COLLECTOR_LIMITS), Ack)
            await agent.close()
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0


class TestArguments:
    def test_non_loopback_bind_without_tokens_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--bind 0.0.0.0 with no tokens exits 2 with an error naming --bind, the token settings and --insecure."""
        monkeypatch.delenv("NODEWATCH_AGENT_TOKENS", raising=False)
        monkeypatch.delenv("NODEWATCH_VIEWER_TOKENS", raising=False)
        with pytest.raises(SystemExit) as info:
            main(["--bind", "0.0.0.0:8765"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--bind 0.0.0.0:8765" in err
        assert "--insecure" in err
        assert "NODEWATCH_AGENT_TOKENS" in err

    def test_non_loopback_bind_with_only_agent_tokens_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Agent tokens alone do not protect the viewer side; the bind is still refused."""
        monkeypatch.setenv("NODEWATCH_AGENT_TOKENS", "a1,a2")
        monkeypatch.delenv("NODEWATCH_VIEWER_TOKENS", raising=False)
        with pytest.raises(SystemExit):
            main(["--bind", "192.0.2.1:8765"])
        assert "viewer tokens" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("argv", "named"),
        [
            (["--bind", "localhost"], "--bind"),
            (["--bind", "127.0.0.1:99999"], "--bind"),
            (["--tls-cert", "/nonexistent.pem"], "--tls-cert"),
            (["--agent-token-file", "/nonexistent-tokens"], "--agent-token-file"),
            (["--forget-after", "0"], "--forget-after"),
            (["--max-nodes", "0"], "--max-nodes"),
        ],
    )
    def test_bad_options_name_the_setting(
        self, argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each bad option exits 2 with a message naming that option."""
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert named in capsys.readouterr().err


class TestDataDir:
    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            ([], "default"),
            (["--ephemeral"], None),
            (["--data-dir", ""], None),
            (["--data-dir", "/srv/nw"], Path("/srv/nw")),
        ],
    )
    def test_where_the_store_lives(self, argv: list[str], expected: str | Path | None, tmp_path: Path) -> None:
        """--data-dir DIR, else the default dir main passes; --ephemeral or --data-dir '' keep it in memory."""
        parser = build_parser()
        config = config_from_args(parser, parser.parse_args(argv), {}, default_dir=tmp_path)
        assert config.data_dir == (tmp_path if expected == "default" else expected)

    def test_ephemeral_with_a_data_dir_is_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Both --ephemeral and --data-dir DIR: exit 2 naming both."""
        with pytest.raises(SystemExit) as info:
            main(["--ephemeral", "--data-dir", "/srv/nw"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--ephemeral" in err
        assert "--data-dir" in err

    def test_store_sync_full(self) -> None:
        """--store-sync full asks SQLite for an fsync per commit."""
        parser = build_parser()
        assert config_from_args(parser, parser.parse_args(["--store-sync", "full"]), {}).store_sync == "FULL"


class TestPromtool:
    async def test_promtool_accepts_metrics_with_3_agents(self, make_client: MakeClient, tmp_path: Path) -> None:
        """`promtool check metrics` passes on a scrape taken with 3 agents connected."""
        promtool = shutil.which("promtool")
        if promtool is None:
            pytest.skip("promtool not installed (Debian package prometheus)")
        client = await make_client()
        agents = []
        for i in range(3):
            ws, _ = await connect_agent(client, hello(f"node-{i}", hostname=f"h{i}"))
            await send_heartbeat(ws, heartbeat(1, mem_used_bytes=2**30, process_count=120, uptime_s=5.0))
            agents.append(ws)
        text = await (await client.get("/metrics")).read()
        assert text.count(b"nodewatch_node_cpu_usage_ratio{") == 3
        check = await asyncio.create_subprocess_exec(promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        async with asyncio.timeout(60):
            out, err = await check.communicate(text)
        assert check.returncode == 0, out.decode() + err.decode()
        assert out.decode() + err.decode() == ""  # no lint warnings either
        for ws in agents:
            await ws.close()


class TestConnectionLimit:
    def test_margin_above_max_nodes_when_files_allow(self) -> None:
        """With files to spare, 503s start at --max-nodes plus the margin."""
        config = CollectorConfig(max_nodes=1000)
        assert connection_limit(config, 1_000_000) == 1000 + config.connection_margin

    def test_clamped_below_the_open_files_limit(self) -> None:
        """Past the fd limit accept() would fail with EMFILE; the 503s start before it instead."""
        config = CollectorConfig(max_nodes=20_000)
        assert connection_limit(config, 20_000) == 20_000 - FD_HEADROOM - config.backlog

    def test_unlimited_files(self) -> None:
        """RLIM_INFINITY leaves the margin as it is."""
        config = CollectorConfig(max_nodes=5)
        assert connection_limit(config, resource.RLIM_INFINITY) == 5 + config.connection_margin
