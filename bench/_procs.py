"""Real-process plumbing shared by ``bench/faults.py`` and the fault tests: spawn, watch, query and kill.

``ProcessGroup`` starts ``nodewatch collector`` and ``nodewatch agent`` (and
helper scripts) as subprocesses on loopback, sends each one's stdout and
stderr to its own log file, and kills every process it started in
``close()``. ``wait_until`` and the small HTTP queries below read a running
collector the way an operator would. It lives in ``bench/`` because benches
never import tests; tests reach it through ``tests.support.processes``.
Not here: any fault (``bench._proxy``), a recording subscriber
(``bench._recorder``) or assertions about the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"nodewatch collector listening on (http://127\.0\.0\.1:(\d+))")
START_TIMEOUT_S = 20.0  # a cold Python start with aiohttp and pydantic on 2 busy cores
STOP_TIMEOUT_S = 5.0
POLL_S = 0.05


@dataclass
class Spawned:
    """One subprocess we started, with the file its stdout and stderr go to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    group: bool = False  # leads its own process group: a kill takes its children (a fleet's workers) too

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the process still runs."""
        if self.alive():
            self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL (after SIGCONT, in case a test stopped it) and reap."""
        if self.group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGCONT)
                os.killpg(self.popen.pid, signal.SIGKILL)
        elif self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGCONT)
                self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_TIMEOUT_S)

    def terminate(self) -> int | None:
        """SIGTERM, wait for a clean exit, SIGKILL if it does not come; the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode


@dataclass
class CollectorProc:
    """A running collector subprocess and its base URL."""

    proc: Spawned
    port: int

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"


def store_flags(data_dir: Path | None) -> list[str]:
    """The collector flags that put its store in ``data_dir``, or keep it in memory (``None``).

    The collector keeps a durable store by default, in a system-wide data dir (/var/lib/nodewatch
    for root, issue 12); a test or bench run must neither share that nor inherit yesterday's
    nodes from it, so it always says where, or ``--ephemeral``.
    """
    return ["--ephemeral"] if data_dir is None else ["--data-dir", str(data_dir)]


@dataclass
class ProcessGroup:
    """Starts processes under ``workdir`` and kills every one of them in ``close()``.

    Collectors of one group share one data dir, ``workdir/collector-data``, so a collector
    restarted after a kill finds what its predecessor stored, as an operator's would.
    """

    workdir: Path
    procs: list[Spawned] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        """Where this group's collectors keep their store."""
        return self.workdir / "collector-data"

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], Any] | None = None,
        group: bool = False,
    ) -> Spawned:
        """Start ``argv`` with its output going to ``workdir/<name>-<n>.log``."""
        log_path = self.workdir / f"{name}-{len(self.procs)}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=full_env,
                preexec_fn=preexec_fn,  # noqa: PLW1509 - only resource limits, set before exec
                start_new_session=group,
            )
        spawned = Spawned(name, popen, log_path, group)
        self.procs.append(spawned)
        return spawned

    def collector(
        self,
        *args: str,
        port: int = 0,
        launcher: bool = False,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], Any] | None = None,
        prefix: Sequence[str] = (),
    ) -> CollectorProc:
        """Start a collector on 127.0.0.1:``port`` and wait for its "listening" line.

        ``launcher`` runs it through ``bench._collector_proc`` to reach the
        settings the CLI does not expose (send/hello timeouts, ping interval).
        Its store, once it has one, lives in ``data_dir``.
        """
        argv = [*prefix, *self._collector_argv(port, launcher), *args]
        proc = self.spawn("collector", argv, env=env, preexec_fn=preexec_fn)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = LISTENING.search(proc.log_text())
            if match:
                return CollectorProc(proc, int(match.group(2)))
            if not proc.alive():
                raise RuntimeError(f"collector exited with {proc.popen.returncode}: {proc.log_text()[-2000:]}")
            time.sleep(POLL_S)
        proc.kill()
        raise RuntimeError(f"collector did not listen within {START_TIMEOUT_S} s: {proc.log_text()[-2000:]}")

    def collector_refusal(self, *args: str) -> tuple[int, str]:
        """Start a collector that must refuse to start; its exit status and everything it wrote."""
        proc = self.spawn("collector", [*self._collector_argv(0, launcher=False), *args])
        try:
            status = proc.popen.wait(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"expected the collector to refuse to start: {proc.log_text()[-2000:]}") from None
        return status, proc.log_text()

    def _collector_argv(self, port: int, launcher: bool) -> list[str]:
        module = ["-m", "bench._collector_proc"] if launcher else ["-m", "nodewatch", "collector"]
        return [sys.executable, *module, "--bind", f"127.0.0.1:{port}", *store_flags(self.data_dir)]

    def agent(self, url: str, node_id: str, *args: str, env: dict[str, str] | None = None) -> Spawned:
        """Start ``nodewatch agent`` pushing to ``url`` as ``node_id`` (logging at DEBUG)."""
        argv = [
            sys.executable,
            "-m",
            "nodewatch",
            "agent",
            "--collector",
            url,
            "--node-id",
            node_id,
            "--log-level",
            "DEBUG",
            *args,
        ]
        return self.spawn(f"agent-{node_id}", argv, env=env)

    def fleet(self, url: str, nodes: int, interval_s: float, duration_s: float, *args: str) -> Spawned:
        """Start ``bench/fleet.py``: ``nodes`` simulated agents pushing to ``url`` every ``interval_s``."""
        argv = [sys.executable, str(REPO / "bench" / "fleet.py"), "--collector", url, "--nodes", str(nodes)]
        argv += ["--interval", str(interval_s), "--duration", str(duration_s), *args]
        return self.spawn("fleet", argv, group=True)  # its multiprocessing workers die with it

    def subscriber(self, url: str) -> Spawned:
        """Start ``bench._subscriber_proc`` on ``url``: a subscriber process a test can SIGSTOP."""
        return self.spawn("subscriber", [sys.executable, "-m", "bench._subscriber_proc", "--url", url])

    def close(self) -> None:
        """Kill every process still running."""
        for proc in self.procs:
            proc.kill()


# ---- waiting and querying ------------------------------------------------------------------------


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until true; return the seconds it took, or fail naming ``what``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            if await condition():
                return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def get_json(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """GET ``url``; its status and JSON body (None when the body is not JSON)."""
    async with asyncio.timeout(10), session.get(url, headers=headers) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, None


async def node(session: aiohttp.ClientSession, base: str, node_id: str) -> dict[str, Any] | None:
    """``/api/v1/nodes/{node_id}`` (status, facts, last sample, full history), or None if unknown."""
    status, body = await get_json(session, f"{base}/api/v1/nodes/{node_id}")
    return body if status == 200 and isinstance(body, dict) else None


async def health(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """``/api/v1/health``'s body."""
    status, body = await get_json(session, f"{base}/api/v1/health")
    if status not in {200, 503} or not isinstance(body, dict):
        raise AssertionError(f"health answered {status}: {body!r}")
    return body


async def metric(session: aiohttp.ClientSession, base: str, name: str, labels: str = "") -> float:
    """One sample's value from ``/metrics`` (0.0 when absent), e.g. name='x_total', labels='endpoint="ingest"'."""
    async with asyncio.timeout(10), session.get(f"{base}/metrics") as response:
        text = await response.text()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    return 0.0


async def last_seqs(session: aiohttp.ClientSession, base: str) -> dict[str, int]:
    """Every node's last_seq, from one ``/api/v1/nodes`` call."""
    status, body = await get_json(session, f"{base}/api/v1/nodes")
    if status != 200 or not isinstance(body, dict):
        raise AssertionError(f"/api/v1/nodes answered {status}: {body!r:.200}")
    return {entry["status"]["node_id"]: entry["status"]["last_seq"] for entry in body["nodes"]}


@dataclass(frozen=True)
class Restart:
    """What ``kill_and_restart`` saw: the new collector and what the old one held when killed."""

    collector: CollectorProc
    held: dict[str, int]  # every node's last_seq, read just before the kill
    slack: int  # samples an agent may have taken between that read and the kill
    listening_mono: float  # when the new collector listened (monotonic)


async def kill_and_restart(
    group: ProcessGroup, session: aiohttp.ClientSession, collector: CollectorProc, *, down_s: float, interval_s: float
) -> Restart:
    """SIGKILL ``collector`` right after reading every node's last_seq; restart it on its port ``down_s`` later."""
    before = time.monotonic()
    held = await last_seqs(session, collector.url)
    collector.proc.kill()
    slack = math.ceil((time.monotonic() - before) / interval_s) + 1
    await asyncio.sleep(down_s)
    restarted = await asyncio.to_thread(group.collector, port=collector.port)
    if restarted.port != collector.port:
        raise AssertionError(f"expected the collector back on port {collector.port}, got {restarted.port}")
    return Restart(restarted, held, slack, time.monotonic())


async def protocol_errors(session: aiohttp.ClientSession, base: str, endpoint: str, reason: str) -> float:
    """How many peers ``endpoint`` refused for ``reason``, from ``/metrics``."""
    labels = f'endpoint="{endpoint}",reason="{reason}"'
    return await metric(session, base, "nodewatch_collector_protocol_errors_total", labels)


def gaps(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Every (after, before) pair of neighbours in ``seqs`` that are not consecutive."""
    return [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def agent_connections(log_text: str) -> int:
    """How many times an agent's log says it got a hello acked."""
    return log_text.count("agent.pusher: connected to ")
