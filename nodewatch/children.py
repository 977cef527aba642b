"""The children of ``nodewatch up``: how they are spawned, watched, restarted, and how the collector's start is judged.

- ``Spawner`` starts ``python -m nodewatch ...`` and relays each child's stderr
  line by line. Lines are held back until ``release()``, so a collector that
  refuses to start is quoted by ``up`` once, under its own message, and not
  interleaved with it.
- ``Supervisor`` restarts a child that died, with ``RestartBackoff`` (pure).
- ``wait_for_collector`` polls health and returns a ``CollectorStart`` value:
  up (maybe degraded, with the collector's reason) or exited (with its status).

Not here: argument parsing, the headless table and the viewer (``nodewatch.up``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Final

STARTUP_TIMEOUT_S: Final = 20.0  # a cold start imports aiohttp and pydantic: a few seconds on a slow disk
STOP_TIMEOUT_S: Final = 3.0  # each program promises to exit within 2 s of SIGTERM
# A child that ran this long before dying is restarted at once again (its earlier failures are forgotten).
STABLE_AFTER_S: Final = 60.0
# Our own collector's health body is a few hundred bytes; anything bigger is not it.
HEALTH_MAX_BYTES: Final = 64 * 1024


@dataclass
class RestartBackoff:
    """Delays before restarting a child that died: 1, 2, 4 ... 30 s; reset after a stable run. Pure."""

    initial_s: float = 1.0
    max_s: float = 30.0
    failures: int = 0

    def next_delay_s(self, ran_for_s: float) -> float:
        """Count one death after ``ran_for_s`` seconds of life and return the delay before the restart."""
        if ran_for_s >= STABLE_AFTER_S:
            self.failures = 0
        delay_s = min(self.max_s, self.initial_s * 2.0**self.failures)
        self.failures += 1
        return delay_s


class StderrRelay:
    """Copies one child's stderr to ``out``, line by line, in a daemon thread; holds lines while told to."""

    def __init__(self, pipe: IO[bytes], out: IO[str], *, hold: bool) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._held: list[str] | None = [] if hold else None
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[bytes]) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace")
                with self._lock:
                    if self._held is not None:
                        self._held.append(line)
                        continue
                    self._write(line)

    def _write(self, line: str) -> None:
        self._out.write(line)
        self._out.flush()

    def held_lines(self) -> list[str]:
        """The lines held back so far."""
        with self._lock:
            return list(self._held or [])

    def drain(self, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """Wait for the child's stderr to end (it exited) and return the lines still held back."""
        self._thread.join(timeout_s)
        return self.held_lines()

    @property
    def alive(self) -> bool:
        """True until the child's stderr has ended."""
        return self._thread.is_alive()

    def release(self) -> None:
        """Write the held lines, and every later line at once."""
        with self._lock:
            for line in self._held or []:
                self._write(line)
            self._held = None


class Spawner:
    """Starts ``nodewatch`` subcommands with relayed stderr; held back until ``release()`` (the collector is up)."""

    def __init__(self, out: IO[str] = sys.stderr) -> None:
        self._out = out
        self._holding = True
        self.relays: dict[int, StderrRelay] = {}

    def __call__(self, args: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``python -m nodewatch ARGS``."""
        proc = subprocess.Popen([sys.executable, "-m", "nodewatch", *args], stderr=subprocess.PIPE)  # noqa: S603 - our CLI
        assert proc.stderr is not None  # stderr=PIPE always gives a pipe
        # Forget relays of children that are gone, so restarts do not grow this map.
        self.relays = {pid: relay for pid, relay in self.relays.items() if relay.alive}
        self.relays[proc.pid] = StderrRelay(proc.stderr, self._out, hold=self._holding)
        return proc

    def release(self) -> None:
        """Stop holding: every child's stderr goes straight through from now on."""
        self._holding = False
        for relay in self.relays.values():
            relay.release()


@dataclass(frozen=True)
class CollectorStart:
    """How the collector's start went: ``up`` (``degraded`` names why, if so) or ``exit_status`` (it exited)."""

    up: bool
    health: dict[str, object] = field(default_factory=dict)
    degraded: str | None = None
    exit_status: int | None = None


def _health_body(raw: bytes) -> dict[str, object] | None:
    """The JSON object a collector's health answers with, or None if this is not one."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) and "status" in body else None


def wait_for_collector(
    url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float = STARTUP_TIMEOUT_S
) -> CollectorStart:
    """Poll health until the collector answers (200, or 503 with its JSON body: degraded), exits, or time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is None or proc.poll() is not None:
            return CollectorStart(up=False, exit_status=None if proc is None else proc.returncode)
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own loopback URL
                body = _health_body(response.read(HEALTH_MAX_BYTES))
                if response.status == 200 and body is not None:
                    return CollectorStart(up=True, health=body)
        except urllib.error.HTTPError as exc:
            # 503 is how a live collector says "degraded" (store, event-loop lag): it is up, with a reason.
            body = _health_body(exc.read(HEALTH_MAX_BYTES)) if exc.code == 503 else None
            exc.close()
            if body is not None:
                return CollectorStart(up=True, health=body, degraded=str(body.get("reason") or body["status"]))
        except OSError:
            pass  # not listening yet (URLError is an OSError)
        time.sleep(0.1)
    return CollectorStart(up=False)


@dataclass
class Child:
    """One watched program: what to run, its process, and when to restart it."""

    name: str
    args: tuple[str, ...]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: RestartBackoff = field(default_factory=RestartBackoff)


class Supervisor:
    """Starts children, notices deaths, restarts with backoff, stops them all in reverse order."""

    def __init__(
        self,
        spawn: Callable[[Sequence[str]], subprocess.Popen[bytes]],
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spawn = spawn
        self._say = say
        self._clock = clock
        self.children: list[Child] = []

    def start(self, name: str, *args: str) -> Child:
        """Start a child now and watch it from here on."""
        child = Child(name, args)
        self.children.append(child)
        self._launch(child)
        return child

    def _launch(self, child: Child) -> None:
        child.proc = self._spawn(child.args)
        child.started_at = self._clock()
        child.restart_at = None

    def watch(self) -> None:
        """Report children that died and restart those whose delay is over (call every ``WATCH_EVERY_S``)."""
        now = self._clock()
        for child in self.children:
            proc = child.proc
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._say(f"restarting the {child.name}")
                    self._launch(child)
                continue
            if proc is None or proc.poll() is None:
                continue
            delay_s = child.backoff.next_delay_s(now - child.started_at)
            self._say(f"the {child.name} exited with status {proc.returncode}; restarting in {delay_s:g} s")
            child.restart_at = now + delay_s

    def stop(self) -> None:
        """SIGTERM in reverse start order, then SIGKILL whatever outlives its grace period."""
        for child in reversed(self.children):
            proc = child.proc
            child.restart_at = None
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
