"""Fault: a subscriber process is frozen with SIGSTOP while a simulated fleet pushes into the collector.

The collector (a real subprocess, send timeout 1 s through
``bench._collector_proc``) must cut the frozen subscriber off with
4429 ``subscriber_too_slow`` (or drop it, docs/protocol.md section 7), keep
its own memory bounded, and go on ingesting and feeding the other subscriber
as before.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import statistics
import time

import aiohttp

from tests.support.processes import (
    ProcessGroup,
    StateRecorder,
    health,
    protocol_errors,
    rss_bytes,
    wait_until,
)

NODES = 100
INTERVAL_S = 0.1  # 1,000 heartbeats/s: a JSON update of 100 nodes every 100 ms fills socket buffers fast
SEND_TIMEOUT_S = 1.0
# RSS may grow by this much while the subscriber is frozen: a queue of unsent updates would grow
# by ~1 MB/s here, and nothing else in the collector should grow at all.
RSS_GROWTH_LIMIT_BYTES = 24 * 2**20


class TestFrozenSubscriber:
    """SIGSTOP one subscriber; the collector and everyone else carry on."""

    async def test_frozen_subscriber_is_cut_off_and_nothing_else_suffers(self, procs: ProcessGroup) -> None:
        """Cut off with 4429, memory bounded, ingest rate and the other subscriber's updates unaffected."""
        collector = await asyncio.to_thread(procs.collector, "--send-timeout", str(SEND_TIMEOUT_S), launcher=True)
        procs.fleet(collector.url, NODES, INTERVAL_S, 60, "--processes", "1")
        ws_url = collector.url.replace("http://", "ws://") + "/api/v1/subscribe?format=json"
        frozen = procs.subscriber(ws_url)
        async with aiohttp.ClientSession() as session, StateRecorder(collector.url) as other:

            async def loaded() -> bool:
                body = await health(session, collector.url)
                return bool(body["nodes"]["online"] >= NODES * 0.9 and body["subscribers"] == 2)

            await wait_until(loaded, 30, "the fleet to be online and both subscribers in")
            await asyncio.sleep(1.5)  # a full second of the ingest rate meter
            rate_before = (await health(session, collector.url))["ingest_heartbeats_per_s"]
            rss_before = rss_bytes(collector.proc.pid)
            frozen.signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            rss_peak = rss_before
            rates = []
            while (await health(session, collector.url))["subscribers"] == 2:
                assert time.monotonic() - frozen_at < 45, "the frozen subscriber was never cut off"
                rss_peak = max(rss_peak, rss_bytes(collector.proc.pid))
                rates.append((await health(session, collector.url))["ingest_heartbeats_per_s"])
                await asyncio.sleep(0.25)
            cut_after_s = time.monotonic() - frozen_at
            too_slow = await protocol_errors(session, collector.url, "subscribe", "subscriber_too_slow")
            # Gaps from just before the freeze on: the start of the stream (snapshot, then the fleet's
            # first beats) is not what this test is about.
            times = [t for t in other.message_times if t >= frozen_at - 1.5]
            gaps_s = [b - a for a, b in itertools.pairwise(times)]
            during = [t for t in other.message_times if t >= frozen_at]
            assert other.running, "the healthy subscriber was disconnected"
        frozen.signal(signal.SIGCONT)
        assert frozen.popen.wait(15) == 0
        ending = frozen.log_text().strip().splitlines()[-1]
        assert too_slow >= 1
        assert ending.startswith(("closed 4429", "dropped")), ending
        assert rss_peak - rss_before < RSS_GROWTH_LIMIT_BYTES, (rss_before, rss_peak)
        assert statistics.median(rates) >= 0.7 * rate_before, (rate_before, rates)
        assert max(gaps_s) < 1.0, "the healthy subscriber's updates stalled"
        assert len(during) >= cut_after_s / 0.1 * 0.5, "the healthy subscriber got too few updates"
        assert collector.proc.alive()
