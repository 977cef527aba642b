"""``LoopScheduler`` on a real event loop: timers run at their time or just after, never before, and a cancel holds.

Timers due half a second or more ahead share one loop timer per 20 ms slot (what every ingest
connection's ack window arms); the tests wait for those for real, as they map the app's clock onto
asyncio's. Not here: what the timers do (tests/collector/test_timers.py drives them with fake ones).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from collector.timers import COALESCE_AFTER_S, SLOT_S, LoopScheduler


class TestLoopScheduler:
    async def test_coalesced_timers_run_in_order_never_early_and_at_most_a_slot_late(self) -> None:
        """Fifty timers due over 50 ms, 0.6 s ahead: each runs once, in order, at or just after its time."""
        scheduler = LoopScheduler(time.monotonic)
        start = time.monotonic() + COALESCE_AFTER_S + 0.1
        due = [start + i * 0.001 for i in range(50)]
        ran: list[tuple[int, float]] = []
        for i, when in enumerate(due):
            scheduler.call_at(when, lambda i=i: ran.append((i, time.monotonic())))  # type: ignore[misc]
        await asyncio.sleep(due[-1] - time.monotonic() + 10 * SLOT_S)
        assert [i for i, _ in ran] == list(range(50))
        assert all(at >= due[i] for i, at in ran)

    async def test_a_cancelled_timer_never_runs_and_its_slot_mates_do(self) -> None:
        """Cancel one of two timers in one slot: only the other runs."""
        scheduler = LoopScheduler(time.monotonic)
        when = time.monotonic() + COALESCE_AFTER_S + 0.05
        ran: list[str] = []
        kept = scheduler.call_at(when, lambda: ran.append("kept"))
        dropped = scheduler.call_at(when, lambda: ran.append("dropped"))
        dropped.cancel()
        await asyncio.sleep(when - time.monotonic() + 10 * SLOT_S)
        kept.cancel()  # after it ran: a no-op
        assert ran == ["kept"]

    async def test_a_callback_that_raises_is_reported_and_spares_the_others(self) -> None:
        """A timer whose callback raises goes to the loop's exception handler; the next timer in its slot still runs."""
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        scheduler = LoopScheduler(time.monotonic)
        when = time.monotonic() + COALESCE_AFTER_S + 0.05
        ran: list[str] = []

        def broken() -> None:
            raise RuntimeError("expected a working callback, got this")

        scheduler.call_at(when, broken)
        scheduler.call_at(when, lambda: ran.append("after"))
        try:
            await asyncio.sleep(when - time.monotonic() + 10 * SLOT_S)
        finally:
            loop.set_exception_handler(None)
        assert ran == ["after"]
        assert [type(c["exception"]) for c in reported] == [RuntimeError]

    async def test_a_timer_due_soon_runs_on_its_own(self) -> None:
        """A timer under half a second ahead is a plain loop timer: it runs at its time, not at a slot's."""
        scheduler = LoopScheduler(time.monotonic)
        when = time.monotonic() + 0.01
        ran: list[float] = []
        scheduler.call_at(when, lambda: ran.append(time.monotonic()))
        await asyncio.sleep(0.05)
        assert len(ran) == 1
        assert ran[0] >= when
