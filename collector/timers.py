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
from collections.abc import Callable
from typing import Protocol

Clock = Callable[[], float]


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


class LoopScheduler:
    """A ``Scheduler`` on the running event loop, for a clock that advances with real time."""

    __slots__ = ("_clock",)

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """One ``loop.call_later``: the delay is ``when`` minus the app clock's now, at least 0."""
        return asyncio.get_running_loop().call_later(max(0.0, when - self._clock()), callback)
