"""When to restart a dead writer process: a pure backoff policy, the clock passed in.

A child that dies once (the OOM killer, a kill -9) is back after ``RESTART_S``; one that dies
at every start (a bad file, a broken install) is retried ``RESTART_S`` doubling up to
``RESTART_MAX_S`` apart, so it never spins; a child that ran ``HEALTHY_S`` resets the delay.
The same numbers as the writer's commit retries (``collector.store.writer``).

``spawn_child`` starts one child on a fresh socketpair (the first, or a restart).

Not here: threads, the queue, what the parent resends (``collector.store.proc`` runs what this decides).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

# The first restart comes after this long: a kill -9 costs about a second of acks, no more.
RESTART_S = 0.5
# A child dying at every start is retried at most this far apart (as the writer's commit retries).
RESTART_MAX_S = 30.0
# A child that ran this long counts as healthy: its next death starts the backoff again.
HEALTHY_S = 60.0


class RestartPolicy:
    """The delay before each restart and the count of restarts; ``started`` and ``died`` take the clock's now."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, first_s: float = RESTART_S, max_s: float = RESTART_MAX_S
    ) -> None:
        self.clock, self.first_s, self.max_s = clock, first_s, max_s
        self.restarts = 0  # children started after a death
        self._delay_s = first_s
        self._started_at: float | None = None

    def started(self) -> None:
        """A child was spawned now (the first one, or a restart)."""
        self._started_at = self.clock()

    def died(self) -> float:
        """The child died now: the seconds to wait before the next start."""
        started = self._started_at
        if started is not None and self.clock() - started >= HEALTHY_S:
            self._delay_s = self.first_s
        delay, self._delay_s = self._delay_s, min(self.max_s, self._delay_s * 2)
        return delay

    def restarted(self) -> None:
        """A restart is starting now (counted for health and /metrics)."""
        self.restarts += 1


def exit_reason(reason: str, policy: RestartPolicy | None) -> tuple[str, float]:
    """Health's reason for a dead child, and the delay before its restart (``policy.died``; 0 with no policy)."""
    if policy is None:
        return f"{reason}; acks stopped: restart the collector", 0.0
    delay = policy.died()
    return f"{reason}; acks stopped: restarting it in {delay:.1f} s (restart {policy.restarts + 1})", delay


def spawn_child(data_dir: Path, sync: str, *, resume: bool) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``collector.store.child`` on ``data_dir``; our end of its socketpair.

    ``resume``: a restart, so the child skips replayed seqs its dead predecessor committed (``--resume``).
    """
    mine, theirs = socket.socketpair()
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    # -P: no working directory on sys.path, so the child runs this package (PYTHONPATH), never another copy.
    argv = [sys.executable, "-P", "-m", "collector.store.child", "--fd", str(theirs.fileno())]
    argv += ["--data-dir", str(data_dir), "--sync", sync, "--parent-pid", str(os.getpid())]
    argv += ["--resume"] * resume
    try:
        # argv is ours: this interpreter, our module, our data dir.
        proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)  # noqa: S603
    finally:
        theirs.close()
    return proc, Connection(mine.detach())
