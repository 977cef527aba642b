"""Pure reconnect policy of the viewer: exponential backoff with jitter, and a slow lane for 401.

Modelled on websockets' ``backoff()`` generator (src/websockets/client.py), as a small
class so the link can reset it after a good session. The random source is injected,
so tests get exact delays. Not here: sleeping, sockets or Qt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# First retry quickly: a restarting collector is usually back within a second.
INITIAL_DELAY_S = 0.5
# Cap: a user glancing at "reconnecting in N s" should never wait more than this.
MAX_DELAY_S = 10.0
FACTOR = 2.0
# A wrong token will not fix itself in seconds; retrying fast would only fill the collector's log.
AUTH_FAILED_DELAY_S = 60.0
# +/- 20 %: enough to spread many viewers after a collector restart.
JITTER = 0.2


@dataclass(slots=True)
class Backoff:
    """Delays before each reconnect attempt; ``reset()`` after a session that got its snapshot."""

    initial_s: float = INITIAL_DELAY_S
    max_s: float = MAX_DELAY_S
    factor: float = FACTOR
    auth_failed_s: float = AUTH_FAILED_DELAY_S
    jitter: float = JITTER
    uniform: Callable[[float, float], float] = random.uniform
    _attempts: int = 0

    def next_delay_s(self) -> float:
        """Return the delay before the next attempt after a transport failure, and count the failure."""
        base = min(self.max_s, self.initial_s * self.factor**self._attempts)
        self._attempts += 1
        return max(0.0, base * (1.0 + self.uniform(-self.jitter, self.jitter)))

    def auth_failed_delay_s(self) -> float:
        """Return the (long) delay before retrying after an HTTP 401."""
        return self.auth_failed_s

    def reset(self) -> None:
        """Forget past failures: the next transport failure retries after ``initial_s`` again."""
        self._attempts = 0
