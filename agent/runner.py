"""The agent's program: one thread with a selector loop that samples into the backlog and drives the pusher.

The loop waits on the collector's socket and a wake-up socket pair (``stop()``
from a signal handler or another thread, a finished slow reading, a resolved
name) until the next timer: the next tick, a slow reading's deadline, or the
pusher's next wake. Slow readings (disk usage, processes, sensors, then the
GPUs through NVML) run in one worker thread, one at a time, so a hung mount or
GPU driver costs the slow tier's fields, not the loop or the heartbeats. Not
here: argument parsing or signal handling (``agent.cli``), the maths
(``agent.rates``, ``agent.schedule``), psutil calls (``agent.sampler``) or the
protocol (``agent.session``). No asyncio: it imports ssl and costs ~8 MB RSS.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import random
import selectors
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.backlog import Backlog
from agent.backoff import Backoff
from agent.cgroup import DEFAULT_ROOT
from agent.config import AgentConfig
from agent.gpu import GpuReader, with_gpus
from agent.identity import node_credential
from agent.pusher import Outcome, Pusher
from agent.readings import FastReading
from agent.sampler import HeartbeatBuilder, PsutilReader, SlowCache, SlowReading
from agent.schedule import TickSchedule
from agent.transport import Link
from agent.wire import WireDict, pack
from agent.worker import Job
from shared.limits import MAX_ACK_EVERY, PROTOCOL_VERSION

log = logging.getLogger(__name__)

SLOW_READ_SHARE = 0.8  # wait this share of an interval for disk usage, processes and sensors
SLOW_READ_MAX_S = 5.0
SLOW_REFRESH_S = 5.0  # disk usage, swap, processes, sensors: slow to read, slow to change


# For a backlog bounded in bytes: a heartbeat with top processes stays under this many bytes.
TYPICAL_FRAME_BYTES = 2048


def ack_every(backlog: Backlog) -> int:
    """How often the collector must ack us: at half the backlog, so unacked samples never crowd it."""
    capacity = backlog.max_samples
    if backlog.max_bytes is not None:
        capacity = min(capacity, backlog.max_bytes // TYPICAL_FRAME_BYTES)
    return min(MAX_ACK_EVERY, max(1, capacity // 2))


class Agent:
    """Wires the sampler, backlog and pusher together; ``run(stop)`` is the whole agent."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        ps: Any = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        random_source: Callable[[], float] | None = None,
        backoff: Backoff | None = None,
        cgroup_root: Path | None = DEFAULT_ROOT,
        on_retry: Callable[[float, Outcome], None] | None = None,
        nvml: Any = None,
    ) -> None:
        """``ps`` and ``nvml`` are the psutil and pynvml modules (None: imported here, and on the first GPU read).

        ``backoff`` replaces the reconnect delays (default: ``Backoff`` drawing from ``random_source``).
        """
        if ps is None:
            # Imported when an agent is built, not when --help is printed; importlib also spares a
            # dependency on types-psutil, which the venv does not have.
            ps = importlib.import_module("psutil")
        self.config = config
        self.instance_id = os.urandom(16).hex()  # 32 hex digits like uuid4().hex; uuid costs RSS
        host = urlsplit(config.ingest_url).hostname or ""
        key = config.node_key
        self.credential = None if key is None else node_credential(key, config.node_id, host)
        self._clock = clock
        self._wall_clock = wall_clock
        self.reader = PsutilReader(
            ps, clock=clock, wall_clock=wall_clock, cgroup_root=cgroup_root, top_processes=config.top_processes
        )
        self.facts = self.reader.read_facts()
        if config.labels:  # facts.labels, the last NodeFacts field, so the map keeps model field order
            self.facts["labels"] = dict(config.labels)
        # NVML is tried once, on the first slow reading; without a GPU or nvidia-ml-py, nothing is sent.
        self.gpu = GpuReader(nvml)
        self.builder = HeartbeatBuilder(boot_time_at=self.facts.get("boot_time_at"))
        self.backlog = Backlog(config.backlog_samples, config.backlog_bytes)
        timeout_s = config.connect_timeout_s  # one budget for TCP, TLS and the upgrade, and one for the hello's ack
        self.pusher = Pusher(
            config.ingest_url,
            self.backlog,
            self.hello_frame,
            token=config.token,
            ws_heartbeat_s=config.ws_heartbeat_s,
            connect_timeout_s=timeout_s,
            hello_ack_timeout_s=timeout_s,
            backoff=backoff if backoff is not None else Backoff(random=random_source or random.random),
            clock=clock,
            on_retry=on_retry,
            wake=self._wake,
        )
        self.seq = 0
        self.schedule: TickSchedule | None = None
        self._stop_requested = False
        self._wake_w: socket.socket | None = None  # the loop's wake-up socket pair exists while run() runs

    def hello_frame(self, dropped_samples: int) -> bytes:
        """The hello frame: the map ``shared.codec.encode(Hello(...))`` packs, in field order."""
        fields: WireDict = {
            "type": "hello",
            "protocol_version": PROTOCOL_VERSION,
            "node_id": self.config.node_id,
            "agent_instance_id": self.instance_id,
            "interval_s": float(self.config.interval_s),
            "sent_at": self._wall_clock(),
            "dropped_samples": dropped_samples,
            "ack_every": ack_every(self.backlog),
            "facts": self.facts,
        }
        if self.credential is not None:  # docs/security.md, 3.1: proves this is the machine, not just a fleet member
            fields["node_credential"] = self.credential
        fields["newest_seq"] = self.seq  # the highest seq taken: bounds our seqs and the ack (docs/security.md, 3.2)
        return pack(fields)

    def read_slow(self) -> SlowReading:
        """Disk usage, swap, processes, sensors, then the GPUs: the slow-read worker's job, never the loop's."""
        return with_gpus(self.reader.read_slow(), self.gpu)

    def stop(self) -> None:
        """Ask the loop to stop cleanly: safe from a signal handler and from another thread."""
        self._stop_requested = True
        self._wake()

    def _wake(self) -> None:
        writer = self._wake_w
        if writer is not None:
            with contextlib.suppress(OSError):  # full: the loop wakes anyway; closed: it has ended
                writer.send(b"\0")

    def run(self) -> None:
        """Sample and push until ``stop()``; returns once the connection is closed (within ~2 s)."""
        log.info(
            "agent %s for node %r pushing to %s every %g s",
            self.instance_id[:8],
            self.config.node_id,
            self.config.ingest_url,
            self.config.interval_s,
        )
        selector = selectors.DefaultSelector()
        wake_r, self._wake_w = socket.socketpair()
        wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        selector.register(wake_r, selectors.EVENT_READ)
        sampling = Sampling(self)
        if self._stop_requested:  # stopped before the wake-up socket existed
            self._wake()
        watched: dict[int, tuple[Link, int]] = {}
        try:
            ready: dict[int, int] = {}
            while True:
                now = self._clock()
                if self._stop_requested:
                    self.pusher.stop()
                else:
                    sampling.step(now)
                self.pusher.step(now, ready)
                if self.pusher.finished:
                    break
                _watch(selector, watched, {link: link.interest() for link in self.pusher.links()})
                wakes = [t for t in (sampling.next_wake(), self.pusher.next_wake()) if t is not None]
                timeout_s = None if not wakes else max(0.0, min(wakes) - self._clock())
                ready = {}
                for key, mask in selector.select(timeout_s):
                    if key.fileobj is wake_r:
                        _drain(wake_r)
                    else:
                        ready[key.fd] = mask
        finally:
            selector.close()
            writer, self._wake_w = self._wake_w, None
            writer.close()
            wake_r.close()
            if sampling.idle():  # else the worker may be inside NVML: leave it to process exit, never wait on it
                self.gpu.close()
        log.info("agent stopped; %d sample(s) were not acked", len(self.backlog))


class Sampling:
    """The tick loop's state: when the next sample is due, and the slow reading it may be waiting for."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        interval_s = agent.config.interval_s
        self.slow_timeout_s = min(SLOW_READ_MAX_S, interval_s * SLOW_READ_SHARE)
        refresh_s = max(interval_s, SLOW_REFRESH_S)
        self.cache = SlowCache(refresh_s=refresh_s, max_age_s=3 * refresh_s)
        agent.builder.prime(agent.reader.read_fast())
        self.schedule = agent.schedule = TickSchedule(agent._clock(), interval_s)
        self.pending: Job[SlowReading] | None = None
        self.waiting: tuple[FastReading, float] | None = None  # a fast reading and the slow read's deadline

    def next_wake(self) -> float:
        return self.waiting[1] if self.waiting is not None else self.schedule.next_due

    def idle(self) -> bool:
        """No slow reading is running (one that hangs stays running: no second one is queued behind it)."""
        return self.pending is None or self.pending.done()

    def step(self, now: float) -> None:
        """Take the sample that is due, or finish the one waiting for its slow reading."""
        agent = self.agent
        if self.waiting is None:
            if now < self.schedule.next_due or self.schedule.poll(now) is None:
                return
            fast = agent.reader.read_fast()
            now = agent._clock()
            if self.pending is None and self.cache.due(now):  # never queue a second slow read behind a hung one
                self.pending = Job(agent.read_slow, agent._wake, name="nodewatch-slow-reading")
                self.cache.started(now)
                self.waiting = (fast, now + self.slow_timeout_s)
                return
            self._emit(fast, now)
        elif (self.pending is not None and self.pending.done()) or now >= self.waiting[1]:
            fast, self.waiting = self.waiting[0], None
            self._emit(fast, now)

    def _emit(self, fast: FastReading, now: float) -> None:
        agent = self.agent
        slow: SlowReading | None = None
        if self.pending is not None and self.pending.done():
            try:
                slow = self.cache.store(self.pending.result(), agent._clock())
            except Exception:  # a bug in one reading must cost one sample's fields, not the agent
                log.exception("slow reading failed")
            self.pending = None
        else:
            slow = self.cache.reuse(now)
        try:
            heartbeat = agent.builder.build(agent.seq + 1, fast, slow, self.schedule.late_ticks)
        except ValueError:
            log.exception("could not build heartbeat %d; skipped", agent.seq + 1)
            return
        agent.backlog.append(agent.seq + 1, pack(heartbeat))
        agent.seq += 1
        agent.pusher.notify()


def _watch(selector: selectors.BaseSelector, watched: dict[int, tuple[Link, int]], wanted: dict[Link, int]) -> None:
    """Make the selector watch exactly ``wanted`` (link -> mask); a closed link's fd may be reused by the next."""
    want = {fd: (link, mask) for link, mask in wanted.items() if mask and (fd := link.fileno()) is not None}
    for fd, (link, _mask) in list(watched.items()):
        if want.get(fd, (None, 0))[0] is not link:
            with contextlib.suppress(KeyError, OSError, ValueError):
                selector.unregister(fd)
            del watched[fd]
    for fd, (link, mask) in want.items():
        if fd not in watched:
            selector.register(fd, mask)
        elif watched[fd][1] != mask:
            selector.modify(fd, mask)
        watched[fd] = (link, mask)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, OSError):
        return
