"""Issue 13, finding 9, against a real ``nodewatch collector`` process: a low open-files limit is said, not silent.

At a hard limit of 4,160 or less the admission limit used to become one connection, and the
warning did not say so. Here the collector starts under a hard limit of 2,048 with
``--max-nodes 10000``: it names both limits with their numbers, and still admits many agents.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from shared.codec import COLLECTOR_LIMITS, decode, encode
from shared.messages import Ack
from tests.support.messages import hello

HARD_LIMIT = 2048
AGENTS = 20


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (HARD_LIMIT, HARD_LIMIT))


async def _hello_acks(url: str) -> int:
    """Open ``AGENTS`` ingest websockets at once, each with its hello; how many got the hello's ack."""
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url) for _ in range(AGENTS)]
        try:
            for index, ws in enumerate(sockets):
                await ws.send_bytes(encode(hello(f"fd-node-{index}", f"inst-{index}")))
            acked = 0
            for ws in sockets:
                message = await ws.receive(timeout=10)
                if message.type == aiohttp.WSMsgType.BINARY and isinstance(decode(message.data, COLLECTOR_LIMITS), Ack):
                    acked += 1
            return acked
        finally:
            for ws in sockets:
                await ws.close()


def test_a_low_open_files_limit_is_named_and_still_admits_agents(tmp_path: Path) -> None:
    """Under a 2,048 hard limit and --max-nodes 10000: two warnings with the numbers, and 20 agents all acked."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path), "PYTHONPATH": str(root)}
    env.pop("NODEWATCH_AGENT_TOKENS", None)
    env.pop("NODEWATCH_VIEWER_TOKENS", None)
    argv = [
        sys.executable,
        "-m",
        "nodewatch",
        "collector",
        "--bind",
        "127.0.0.1:0",
        "--ephemeral",
        "--max-nodes",
        "10000",
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        preexec_fn=_low_fd_limit,  # noqa: PLW1509 - only the resource limit under test, set before exec
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert found, banner
        acked = asyncio.run(_hello_acks(f"ws://127.0.0.1:{found.group(1)}/api/v1/ingest"))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert f"open-files limit is {HARD_LIMIT}, below --max-nodes 10000" in stderr, stderr
    admission = re.search(r"admission limit is (\d+) ingest connections \(open-files limit (\d+)", stderr)
    assert admission, stderr
    assert int(admission.group(2)) == HARD_LIMIT
    assert int(admission.group(1)) >= HARD_LIMIT // 2, "the admission limit must not collapse under a low fd limit"
    assert acked == AGENTS
