"""Overhead of the nodewatch agent over ws:// and wss:// next to node_exporter and Glances, side by side in one run.

Runs, for ``--duration`` seconds at a 1 s interval, all on loopback:
- two agents (``python -m nodewatch agent``), one over ws:// and one over wss://,
  each pushing to a collector-like sink in this process; the wss:// sink has a
  self-signed certificate made with the ``openssl`` CLI, which the agent trusts
  through ``SSL_CERT_FILE``;
- ``prometheus-node-exporter`` (Debian package), scraped once a second, if installed;
- Glances 4 (``glances -w --disable-webui``) with ``/api/4/all`` polled once a second, if found
  (``--glances PATH``, default ``/tmp/glances-venv/bin/glances``: a separate venv, never .venv).

Reports CPU as % of one core (utime+stime deltas from /proc/PID/stat over the
steady-state part of the run, after the first sample arrived), RSS (median and
max of VmRSS sampled every second) and bytes per sample: msgpack frame size for
the agent with the JSON size of the same sample beside it, the response body
for the others. It is a measurement script, not a test; it prints a markdown table and the command.

    .venv/bin/python bench/agent_overhead.py --duration 60

``--agent-repo DIR`` runs the agent from another checkout (for a before/after
table: ``git archive REV agent shared nodewatch | tar -x -C DIR``); the sinks
and comparators stay the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from bench._stats import median
from shared.codec import decode, encode, encode_json
from shared.messages import Ack, Heartbeat, Hello

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Issue 14: RSS <= 20 MB over ws:// and <= 26 MB over wss://, CPU <= 0.2 % of one core at 1 Hz.
TARGETS = {"cpu_percent": 0.2, "rss_ws_mb": 20.0, "rss_wss_mb": 26.0, "heartbeat_bytes": 600}


@dataclass
class Measured:
    """What one measured process did during the run."""

    name: str
    pid: int | None = None
    cpu_start: tuple[float, int] | None = None  # (monotonic s, clock ticks)
    cpu_end: tuple[float, int] | None = None
    rss_mb: list[float] = field(default_factory=list)
    sample_bytes: list[int] = field(default_factory=list)
    json_bytes: list[int] = field(default_factory=list)
    note: str = ""

    def cpu_percent(self) -> float | None:
        if self.cpu_start is None or self.cpu_end is None or self.cpu_end[0] <= self.cpu_start[0]:
            return None
        ticks = self.cpu_end[1] - self.cpu_start[1]
        return ticks / CLOCK_TICKS / (self.cpu_end[0] - self.cpu_start[0]) * 100.0


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, all threads included, in clock ticks (proc(5))."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Sink:
    """A collector-like ingest endpoint: acks the hello and every heartbeat, records frame sizes."""

    def __init__(self, measured: Measured) -> None:
        self.measured = measured
        self.first_sample = asyncio.Event()
        self.last_sample: Heartbeat | None = None
        self.runner: web.AppRunner | None = None

    async def start(self, port: int, context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/ingest", self.ingest)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port, ssl_context=context).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def ingest(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            message = decode(msg.data)
            if isinstance(message, Hello):
                await ws.send_bytes(encode(Ack(seq=0)))
            elif isinstance(message, Heartbeat):
                if self.first_sample.is_set():
                    self.measured.sample_bytes.append(len(msg.data))
                    self.measured.json_bytes.append(len(encode_json(message).encode()))
                self.first_sample.set()
                self.last_sample = message
                await ws.send_bytes(encode(Ack(seq=message.seq)))
        return ws


async def poll(session: aiohttp.ClientSession, url: str, measured: Measured, ready: asyncio.Event) -> None:
    """Fetch ``url`` once a second, recording body sizes; set ``ready`` after the first answer."""
    while True:
        started = time.monotonic()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with asyncio.timeout(5.0), session.get(url) as response:
                body = await response.read()
                if response.status == 200:
                    if ready.is_set():
                        measured.sample_bytes.append(len(body))
                    ready.set()
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def reference_heartbeat_bytes(sample: Heartbeat) -> tuple[int, int]:
    """Size of a real sample reshaped to the target: 2 cores, 2 mounts, 2 interfaces, no top processes."""
    disks = dict(sample.disks or {"/": [250 * 10**9, 100 * 10**9]})
    first = next(iter(disks.values()))
    shaped = sample.model_copy(
        update={
            "cpu_per_core_percent": ([*(sample.cpu_per_core_percent or []), 12.3, 45.6])[:2],
            "disks": {"/": first, "/home": [first[0] * 4, first[1] * 3]},
            "net_interfaces": {"eth0": [123456.7, 23456.7], "wlan0": [3456.7, 456.7]},
            "top_cpu": None,
            "top_memory": None,
        }
    )
    return len(encode(shaped)), len(encode_json(shaped).encode())


@dataclass
class Running:
    """One measured process, with the event that says it has served its first sample."""

    measured: Measured
    proc: asyncio.subprocess.Process
    ready: asyncio.Event


async def spawn(
    measured: Measured,
    argv: list[str],
    ready: asyncio.Event,
    cwd: str | Path = "/tmp",
    env: dict[str, str] | None = None,
) -> Running:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=cwd, env=env
    )
    measured.pid = proc.pid
    return Running(measured, proc, ready)


async def start_comparators(
    args: argparse.Namespace, session: aiohttp.ClientSession, pollers: list[asyncio.Task[None]]
) -> tuple[list[Measured], list[Running]]:
    """Start node_exporter and Glances where installed, each with a poller fetching it once a second."""
    exporter = Measured("prometheus-node-exporter")
    glances = Measured("Glances 4 (-w, /api/4/all)")
    running: list[Running] = []
    if args.agent_only:
        exporter.note = glances.note = "skipped (--agent-only)"
    elif args.exporter_bin is None:
        exporter.note = "not run: prometheus-node-exporter not installed (apt-get install prometheus-node-exporter)"
    else:
        port = free_port()
        ready = asyncio.Event()
        running.append(await spawn(exporter, [args.exporter_bin, f"--web.listen-address=127.0.0.1:{port}"], ready))
        pollers.append(asyncio.ensure_future(poll(session, f"http://127.0.0.1:{port}/metrics", exporter, ready)))
    if args.agent_only:
        pass
    elif args.glances_bin is None:
        glances.note = "not run: glances not found (pip install 'glances[web]' into a separate venv, not .venv)"
    else:
        port = free_port()
        ready = asyncio.Event()
        argv = [args.glances_bin, "-w", "--disable-webui", "-B", "127.0.0.1", "-p", str(port), "-t", "1"]
        running.append(await spawn(glances, argv, ready))
        pollers.append(asyncio.ensure_future(poll(session, f"http://127.0.0.1:{port}/api/4/all", glances, ready)))
    return [exporter, glances], running


async def observe(running: list[Running], duration_s: float, settle_s: float) -> None:
    """Wait for every process's first sample, settle, then take CPU and RSS over ``duration_s``."""
    for item in running:
        try:
            async with asyncio.timeout(60.0):
                await item.ready.wait()
        except TimeoutError:
            item.measured.note = "did not answer within 60 s"
    await asyncio.sleep(settle_s)  # start-up work is not steady-state overhead
    pids = [(item.measured, item.proc.pid) for item in running]
    for measured, pid in pids:
        measured.cpu_start = (time.monotonic(), cpu_ticks(pid))
        measured.sample_bytes.clear()
        measured.json_bytes.clear()
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        for measured, pid in pids:
            measured.rss_mb.append(rss_mb(pid))
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    for measured, pid in pids:
        measured.cpu_end = (time.monotonic(), cpu_ticks(pid))


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl CLI; the certificate is its own CA."""
    cert, key = directory / "sink.pem", directory / "sink.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName = IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def start_agent(
    args: argparse.Namespace, scheme: str, certs: Path, stack: contextlib.AsyncExitStack
) -> tuple[Running, Sink]:
    """A sink (TLS for wss://) and an agent pushing to it from ``--agent-repo``."""
    measured = Measured(f"nodewatch agent ({scheme}://)")
    sink = Sink(measured)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(args.agent_repo)}
    context = None
    if scheme == "wss":
        cert, key = self_signed(certs)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        env["SSL_CERT_FILE"] = str(cert)
    await sink.start(port, context)
    stack.push_async_callback(sink.stop)
    argv = [sys.executable, "-m", "nodewatch", "agent", "--collector", f"{scheme}://127.0.0.1:{port}"]
    argv += ["--interval", str(args.interval), "--node-id", f"bench-{scheme}", "--log-level", "WARNING"]
    return await spawn(measured, argv, sink.first_sample, cwd=args.agent_repo, env=env), sink


async def measure(args: argparse.Namespace) -> tuple[list[Measured], tuple[int, int] | None]:
    """Run everything side by side and return what each process cost."""
    session = aiohttp.ClientSession()
    pollers: list[asyncio.Task[None]] = []
    running: list[Running] = []
    sinks: list[Sink] = []
    async with contextlib.AsyncExitStack() as stack:
        certs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nodewatch-bench-")))
        for scheme in ("ws", "wss"):
            agent_run, sink = await start_agent(args, scheme, certs, stack)
            running.append(agent_run)
            sinks.append(sink)
        results = await _measure_with(args, session, pollers, running)
    reference = reference_heartbeat_bytes(sinks[0].last_sample) if sinks[0].last_sample is not None else None
    return results, reference


async def _measure_with(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    pollers: list[asyncio.Task[None]],
    running: list[Running],
) -> list[Measured]:
    agents = [item.measured for item in running]
    try:
        others, started = await start_comparators(args, session, pollers)
        running += started
        await observe(running, args.duration, args.interval)
    finally:
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        for item in running:
            item.proc.terminate()
        for item in running:
            try:
                async with asyncio.timeout(5.0):
                    await item.proc.wait()
            except TimeoutError:
                item.proc.kill()
                await item.proc.wait()
        await session.close()
    return [*agents, *others]


def format_table(results: Sequence[Measured], duration_s: float, reference: tuple[int, int] | None) -> str:
    lines = [
        f"Agent overhead, {duration_s:g} s at a 1 s interval, one run, side by side ({os.cpu_count()} cores).",
        "",
        "| process | CPU % of one core | RSS MB (median / max) | bytes per sample | JSON bytes (same sample) | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in results:
        cpu = m.cpu_percent()
        cpu_text = f"{cpu:.2f}" if cpu is not None else "-"
        rss_text = f"{median(m.rss_mb):.1f} / {max(m.rss_mb):.1f}" if m.rss_mb else "-"
        size = f"{median(m.sample_bytes):.0f}" if m.sample_bytes else "-"
        json_size = f"{median(m.json_bytes):.0f}" if m.json_bytes else "-"
        lines.append(f"| {m.name} | {cpu_text} | {rss_text} | {size} | {json_size} | {m.note} |")
    if reference is not None:
        lines.append(
            f"| agent heartbeat reshaped to 2 cores, 2 mounts, 2 interfaces | | | {reference[0]} | {reference[1]} |"
            " target shape |"
        )
    lines += [
        "",
        f"Targets for the agent: CPU <= {TARGETS['cpu_percent']} % of one core, RSS <= {TARGETS['rss_ws_mb']:g} MB"
        f" over ws:// and <= {TARGETS['rss_wss_mb']:g} MB over wss://, heartbeat <= {TARGETS['heartbeat_bytes']}"
        " bytes. Bytes per sample are the msgpack frame for the agent, the uncompressed response body for the others.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the agent's overhead next to node_exporter and Glances.")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="agent interval in seconds (default 1)")
    parser.add_argument("--glances", default="/tmp/glances-venv/bin/glances", help="path to a Glances 4 binary")
    parser.add_argument("--agent-only", action="store_true", help="skip the comparators")
    parser.add_argument("--agent-repo", type=Path, default=REPO, help="run the agent from this checkout")
    args = parser.parse_args(argv)
    if not 1.0 <= args.duration <= 3600.0:
        parser.error(f"--duration: expected 1-3600 seconds, got {args.duration!r}")
    args.exporter_bin = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    args.glances_bin = args.glances if Path(args.glances).exists() else shutil.which("glances")
    if shutil.which("openssl") is None:
        parser.error("openssl: expected the openssl CLI on PATH (it makes the wss:// sink's certificate)")
    results, reference = asyncio.run(measure(args))
    print(format_table(results, args.duration, reference))
    print(f"\n    {shlex.join([Path(sys.executable).name, *sys.argv])}  (agent from {args.agent_repo})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
