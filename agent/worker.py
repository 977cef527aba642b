"""One blocking call run in its own daemon thread, with a completion callback: a future without concurrent.futures.

The agent's loop never blocks, so what can (``getaddrinfo``, a slow reading
of a hung mount) runs here. A daemon thread per job, not a pool: a job that
hangs cannot hold up the process's exit after SIGTERM (a pool's threads are
joined at exit), and ``concurrent.futures`` costs ~0.3 MB RSS of a 20 MB budget.
Not here: timeouts (the caller stops waiting; the thread ends when the call does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Job(Generic[T]):
    """``fn()`` running in a thread; ``on_done`` is called from that thread when it returns or raises."""

    def __init__(self, fn: Callable[[], T], on_done: Callable[[], None], *, name: str) -> None:
        self._fn = fn
        self._on_done = on_done
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result(), as a future does
            self._error = exc
        self._done.set()
        self._on_done()

    def done(self) -> bool:
        """The call has returned or raised."""
        return self._done.is_set()

    def result(self) -> T:
        """What the call returned, or raise what it raised; only once ``done()``."""
        if not self._done.is_set():
            raise RuntimeError("expected a finished job, got one still running")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set whenever no error was
