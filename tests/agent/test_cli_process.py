"""The real ``python -m nodewatch agent`` process: it pushes, and SIGTERM closes cleanly and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from .ingest_server import IngestServer, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
class TestAgentProcess:
    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    async def test_signal_closes_1000_and_exits_0_within_2s(self, ingest_server: IngestServer, signum: int) -> None:
        """After SIGTERM or SIGINT the collector sees close code 1000 and the process exits 0 within 2 s."""
        env = {**os.environ, "NODEWATCH_COLLECTOR": f"http://127.0.0.1:{ingest_server.port}"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nodewatch",
            "agent",
            "--interval",
            "0.1",
            "--node-id",
            "proc-node",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_until(lambda: len(ingest_server.log.seqs) >= 3, timeout_s=30.0)
            started = time.monotonic()
            proc.send_signal(signum)
            async with asyncio.timeout(2.0):
                code = await proc.wait()
            elapsed_s = time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        stderr = (await proc.stderr.read()).decode()
        assert code == 0, stderr
        assert elapsed_s < 2.0
        await wait_until(lambda: bool(ingest_server.log.close_codes), timeout_s=2.0)
        assert ingest_server.log.close_codes == [1000]
        assert ingest_server.log.hellos[0].node_id == "proc-node"
        assert "connected to ws://127.0.0.1" in stderr

    async def test_token_file_reaches_the_collector(self, tmp_path: Path) -> None:
        """A real agent started with --token-file is let in by a collector that wants that token."""
        server = IngestServer(tokens=frozenset({"from-the-file"}))
        await server.start()
        token_file = tmp_path / "agent.token"
        token_file.write_text("from-the-file\n")
        token_file.chmod(0o600)
        argv = ["--collector", server.url, "--interval", "0.1", "--token-file", str(token_file)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nodewatch", "agent", *argv, cwd=REPO, env=dict(os.environ),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_until(lambda: len(server.log.seqs) >= 2, timeout_s=30.0)
        finally:
            proc.terminate()
            await proc.wait()
            await server.stop()

    async def test_runs_without_the_collectors_dependencies(self, ingest_server: IngestServer) -> None:
        """With aiohttp, pydantic and asyncio unimportable (a node's install), the agent still pushes and stops 0."""
        code = (
            "import sys\n"
            "for name in ('aiohttp', 'pydantic', 'asyncio', 'prometheus_client'):\n"
            "    sys.modules[name] = None  # an import of any of them now raises ImportError\n"
            "from nodewatch.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        argv = ["agent", "--collector", ingest_server.url, "--interval", "0.1", "--node-id", "lean-node"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, *argv, cwd=REPO, env=dict(os.environ),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await wait_until(lambda: len(ingest_server.log.seqs) >= 3, timeout_s=30.0)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(2.0):
                status = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        assert status == 0, (await proc.stderr.read()).decode()
        assert ingest_server.log.hellos[0].node_id == "lean-node"

    def test_bad_setting_exits_2_naming_it(self) -> None:
        """A bad NODEWATCH_INTERVAL stops the agent at once with the setting's name."""
        import subprocess

        env = {**os.environ, "NODEWATCH_INTERVAL": "soon"}
        result = subprocess.run(
            [sys.executable, "-m", "nodewatch", "agent", "--collector", "ws://127.0.0.1:1"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2
        assert "interval: expected seconds between 0.05 and 3600, got 'soon'" in result.stderr
