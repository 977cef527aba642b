"""A rate-limited log line: at most one line per key per interval, never demoted to a lower level.

Why: a refused node key must be logged at WARNING every time it happens (an
operator has to see that someone holds the fleet token and claims a node),
but a hostile agent retrying every 100 ms must not write 10 lines a second.
``LogGate`` says whether a line may go out now and how many were held back
since the last one, so the line that does go out says "(N more suppressed)".
The same shape as the kernel's ``printk_ratelimit`` with its "callbacks
suppressed" count. Pure: the caller passes the monotonic ``now``.

``LineBudget`` is the other shape, for a line that is routine one at a time
but costs under a flood (the per-hello INFO line: a flooder reconnecting 200
times a second wrote 200 lines a second): ``LINE_BURST`` lines in a row, then
``LINE_RATE_PER_S``, at INFO; past it DEBUG, and the next INFO line says how
many went to DEBUG (``info_budgeted``).

Not here: choosing the text (``warn_limited`` and ``info_budgeted`` are
conveniences around ``logging.Logger``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

# One line per key per 10 s: a retrying agent (every 60 s after a 4403, see docs/security.md) logs
# each attempt; a hostile loop logs six lines a minute per node id, with the count of the rest.
DEFAULT_LOG_INTERVAL_S = 10.0
# Keys are node ids, which a peer chooses: bound them. 4,096 keys of ~100 bytes is ~0.5 MiB at worst.
DEFAULT_MAX_KEYS = 4096
# A fleet's restart writes its hellos at INFO up to this many in a row (then one a second, the rest at DEBUG):
# 100 lines is a screenful an operator reads; a reconnect storm of 10,000 agents is summarised, not printed.
LINE_BURST = 100
LINE_RATE_PER_S = 1.0


@dataclass(slots=True)
class _KeyState:
    last_logged: float
    suppressed: int


class LogGate:
    """Per-key log pacing: ``admit(key, now)`` is None (hold this line back) or the count held back."""

    __slots__ = ("_keys", "interval_s", "max_keys")

    def __init__(self, interval_s: float = DEFAULT_LOG_INTERVAL_S, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if interval_s < 0 or max_keys < 1:
            raise RuntimeError(f"expected interval_s >= 0 and max_keys >= 1, got {interval_s!r} and {max_keys!r}")
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._keys: dict[str, _KeyState] = {}

    def admit(self, key: str, now: float) -> int | None:
        """None to hold this line back; else how many lines of ``key`` were held back since the last one."""
        state = self._keys.get(key)
        if state is not None and now - state.last_logged < self.interval_s:
            state.suppressed += 1
            return None
        suppressed = 0 if state is None else state.suppressed
        if state is None and len(self._keys) >= self.max_keys:
            self._prune(now)
        self._keys.pop(key, None)  # re-insert: the dict's order is then oldest line first, for ``_prune``
        self._keys[key] = _KeyState(last_logged=now, suppressed=0)
        return suppressed

    def __len__(self) -> int:
        return len(self._keys)

    def _prune(self, now: float) -> None:
        """Drop keys whose interval has passed (they would log at once anyway), else the oldest one.

        Dropping a key with a held-back count loses that count: the bound on memory wins.
        """
        for key in [k for k, s in self._keys.items() if now - s.last_logged >= self.interval_s]:
            del self._keys[key]
        if len(self._keys) >= self.max_keys:
            del self._keys[next(iter(self._keys))]


def warn_limited(logger: logging.Logger, gate: LogGate, key: str, now: float, msg: str, *args: object) -> bool:
    """Log ``msg % args`` at WARNING unless ``gate`` holds it back; True if a line went out."""
    suppressed = gate.admit(key, now)
    if suppressed is None:
        return False
    _log_counted(logger, logging.WARNING, msg, args, held=suppressed, what="similar lines suppressed")
    return True


class LineBudget:
    """A token bucket of lines for one kind of line: ``admit(now)`` is None (over: log at DEBUG) or the count held."""

    __slots__ = ("_last", "_tokens", "burst", "held", "rate_per_s")

    def __init__(self, rate_per_s: float = LINE_RATE_PER_S, burst: int = LINE_BURST) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise RuntimeError(f"expected rate_per_s > 0 and burst >= 1, got {rate_per_s!r} and {burst!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self.held = 0  # lines sent to DEBUG since the last INFO one

    def admit(self, now: float) -> int | None:
        """None if this line is over the budget (it is counted); else how many were held back before it."""
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate_per_s)
        self._last = now if self._last is None else max(self._last, now)
        if self._tokens < 1:
            self.held += 1
            return None
        self._tokens -= 1
        held, self.held = self.held, 0
        return held


def info_budgeted(logger: logging.Logger, budget: LineBudget, now: float, msg: str, *args: object) -> bool:
    """Log ``msg % args`` at INFO within ``budget``, else at DEBUG; True if it went out at INFO."""
    held = budget.admit(now)
    if held is None:
        logger.debug(msg, *args)
        return False
    _log_counted(logger, logging.INFO, msg, args, held=held, what="similar lines at DEBUG since the last")
    return True


def _log_counted(
    logger: logging.Logger, level: int, msg: str, args: tuple[object, ...], *, held: int, what: str
) -> None:
    """Log the line that goes out, saying how many were held back before it (if any): "(N <what>)"."""
    if held:
        logger.log(level, msg + f" (%d {what})", *args, held, stacklevel=2)
    else:
        logger.log(level, msg, *args, stacklevel=2)
