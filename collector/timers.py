"""Timers on the collector's injected monotonic clock: the one seam between that clock and asyncio's.

The liveness task and each ingest connection's ack and hello timers ask a
``Scheduler`` to call them back at a time on the clock the app was built with.
``LoopScheduler`` maps that time onto the running event loop. A test that
injects a fake clock injects a scheduler that fires when the test moves that
clock, so no test-only "wake up now" hook is needed.

Not here: what the timers do (``collector.runtime``, ``collector.ingest``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Protocol

Clock = Callable[[], float]
# Timers due this far ahead or more share one loop timer per slot (see LoopScheduler).
COALESCE_AFTER_S = 0.5
# A slot's width: how late a coalesced timer may run. Well under the 5 s ack window and the
# liveness thresholds' seconds, and it leaves at most 50 loop timers a second for all of them.
SLOT_S = 0.02


class TimerHandle(Protocol):
    """A scheduled callback that can be called off; ``asyncio.TimerHandle`` is one."""

    def cancel(self) -> None:
        """Do not call the callback (a no-op once it ran)."""
        ...


class Scheduler(Protocol):
    """Calls a callback once the app's clock reads ``when`` or later."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the event loop at ``when`` (the app's clock), or soon after."""
        ...


class _Timer:
    """One callback in a ``LoopScheduler`` slot; ``cancel`` only forgets it (no heap to touch)."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        """Do not call the callback (a no-op once it ran)."""
        self.callback = None


class LoopScheduler:
    """A ``Scheduler`` on the running event loop, for a clock that advances with real time.

    A timer due soon is one ``loop.call_later``. One due ``COALESCE_AFTER_S`` or later joins the
    slot of ``SLOT_S`` it ends in, and each slot is one loop timer: every ingest connection arms
    one ack timer per 5 s window (2,000 a second at 10,000 nodes), and asyncio's heap of
    ``TimerHandle`` (compared in Python) cost ~2 us per heartbeat. Such a timer runs up to
    ``SLOT_S`` late, which the protocol allows ("at ``when``, or soon after").
    """

    __slots__ = ("_clock", "_slots")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._slots: dict[int, list[_Timer]] = {}

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` at ``when`` (the app's clock) or at most ``SLOT_S`` after it."""
        delay = when - self._clock()
        loop = asyncio.get_running_loop()
        if delay < COALESCE_AFTER_S:
            return loop.call_later(max(0.0, delay), callback)
        slot = math.ceil(when / SLOT_S)
        timers = self._slots.get(slot)
        if timers is None:
            timers = self._slots[slot] = []
            loop.call_later(slot * SLOT_S - self._clock(), self._fire, slot)
        timer = _Timer(callback)
        timers.append(timer)
        return timer

    def _fire(self, slot: int) -> None:
        """Run the slot's live callbacks; one that raises is reported as the loop reports any callback's."""
        loop = asyncio.get_running_loop()
        for timer in self._slots.pop(slot, ()):
            callback = timer.callback
            if callback is None:
                continue
            timer.callback = None
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - as asyncio's Handle._run: report it, run the others
                loop.call_exception_handler({"message": "Exception in a timer callback", "exception": exc})
