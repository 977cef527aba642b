"""The agent's asyncio program: a tick loop that samples into the backlog, and the pusher.

Not here: argument parsing or signal handling (``agent.cli``), the maths
(``agent.rates``, ``agent.schedule``) or psutil calls (``agent.sampler``).
Both tasks live in one TaskGroup and end when ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent.backlog import Backlog
from agent.backoff import Backoff
from agent.cgroup import DEFAULT_ROOT
from agent.config import AgentConfig
from agent.pusher import Outcome, Pusher
from agent.sampler import HeartbeatBuilder, PsutilReader, SlowCache, SlowReading
from agent.schedule import TickSchedule
from agent.wire import WireDict, pack
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
        random_source: Callable[[], float] = random.random,
        cgroup_root: Path | None = DEFAULT_ROOT,
        on_retry: Callable[[float, Outcome], None] | None = None,
    ) -> None:
        if ps is None:
            # Imported when an agent is built, not when --help is printed; importlib also spares a
            # dependency on types-psutil, which the venv does not have.
            ps = importlib.import_module("psutil")
        self.config = config
        self.instance_id = uuid.uuid4().hex
        self._clock = clock
        self._wall_clock = wall_clock
        self.reader = PsutilReader(
            ps, clock=clock, wall_clock=wall_clock, cgroup_root=cgroup_root, top_processes=config.top_processes
        )
        self.facts = self.reader.read_facts()
        self.builder = HeartbeatBuilder(boot_time_at=self.facts.get("boot_time_at"))
        self.backlog = Backlog(config.backlog_samples, config.backlog_bytes)
        self.pusher = Pusher(
            config.ingest_url,
            self.backlog,
            self.hello_frame,
            token=config.token,
            ws_heartbeat_s=config.ws_heartbeat_s,
            connect_timeout_s=config.connect_timeout_s,
            hello_ack_timeout_s=config.connect_timeout_s,
            backoff=Backoff(random=random_source),
            clock=clock,
            on_retry=on_retry,
        )
        self.seq = 0
        self.schedule: TickSchedule | None = None

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
        return pack(fields)

    async def run(self, stop: asyncio.Event) -> None:
        """Sample and push until ``stop`` is set."""
        log.info(
            "agent %s for node %r pushing to %s every %g s",
            self.instance_id[:8],
            self.config.node_id,
            self.config.ingest_url,
            self.config.interval_s,
        )
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nodewatch-sampler")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._sample_loop(stop, executor))
                group.create_task(self.pusher.run(stop))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _sample_loop(self, stop: asyncio.Event, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self.config.interval_s
        slow_timeout_s = min(SLOW_READ_MAX_S, interval_s * SLOW_READ_SHARE)
        self.builder.prime(self.reader.read_fast())
        schedule = self.schedule = TickSchedule(self._clock(), interval_s)
        pending: asyncio.Future[SlowReading] | None = None
        refresh_s = max(interval_s, SLOW_REFRESH_S)
        cache = SlowCache(refresh_s=refresh_s, max_age_s=3 * refresh_s)
        while not stop.is_set():
            wait_s = schedule.next_due - self._clock()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await stop.wait()
                continue
            if schedule.poll(self._clock()) is None:
                continue
            fast = self.reader.read_fast()
            now = self._clock()
            started_now = False
            if pending is None and cache.due(now):  # never queue a second slow read behind one that hangs
                pending = loop.run_in_executor(executor, self.reader.read_slow)
                cache.started(now)
                started_now = True
            if pending is not None and started_now:
                await asyncio.wait({pending}, timeout=slow_timeout_s)
            slow: SlowReading | None = None
            if pending is not None and pending.done():
                try:
                    slow = cache.store(pending.result(), self._clock())
                except Exception:  # a bug in one reading must cost one sample's fields, not the agent
                    log.exception("slow reading failed")
                pending = None
            else:
                slow = cache.reuse(now)
            try:
                heartbeat = self.builder.build(self.seq + 1, fast, slow, schedule.late_ticks)
            except ValueError:
                log.exception("could not build heartbeat %d; skipped", self.seq + 1)
                continue
            self.seq += 1
            self.backlog.append(self.seq, pack(heartbeat))
            self.pusher.notify()
