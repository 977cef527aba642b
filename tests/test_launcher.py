"""The ``nodewatch`` launcher: subcommand dispatch and ``nodewatch up``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from nodewatch.children import RestartBackoff, StderrRelay, Supervisor, wait_for_collector
from nodewatch.cli import main
from nodewatch.up import format_table, has_display, viewer_ends_run
from nodewatch.up import main as up_main
from shared.messages import Heartbeat, NodeEntry, NodeStatus

REPO = Path(__file__).resolve().parent.parent


class TestDispatch:
    def test_no_subcommand_prints_usage_and_fails(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Running ``nodewatch`` alone lists the subcommands and exits 2."""
        assert main([]) == 2
        out = capsys.readouterr().out
        for name in ("agent", "collector", "viewer", "up"):
            assert name in out

    def test_unknown_subcommand_is_named(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A mistyped subcommand is echoed back with the valid choices."""
        assert main(["colector"]) == 2
        assert "got 'colector'" in capsys.readouterr().err

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``--version`` prints the package version."""
        assert main(["--version"]) == 0
        assert capsys.readouterr().out.startswith("nodewatch 0.")


class TestUpHelpers:
    @pytest.mark.parametrize(
        ("environ", "expected"),
        [
            ({}, False),
            ({"DISPLAY": ":0"}, True),
            ({"WAYLAND_DISPLAY": "wayland-0"}, True),
            ({"QT_QPA_PLATFORM": "offscreen"}, True),
            ({"DISPLAY": ""}, False),
        ],
    )
    def test_has_display(self, environ: dict[str, str], expected: bool) -> None:
        """A window is attempted only with a display server or an explicit Qt platform."""
        assert has_display(environ) is expected

    def test_format_table_shows_state_and_numbers(self) -> None:
        """The headless table shows each node's state, CPU and memory, sorted by node id."""
        status = NodeStatus(
            node_id="b-node",
            state="stale",
            state_since_at=1.0,
            interval_s=1.0,
            agent_instance_id="x",
            connected=True,
            last_seq=3,
        )
        sample = Heartbeat(seq=3, sampled_at=1.0, cpu_percent=12.25, mem_percent=50.0, load_avg=[0.5, 0.4, 0.3])
        first = NodeEntry(status=status.model_copy(update={"node_id": "a-node", "state": "online"}))
        table = format_table([NodeEntry(status=status, last_sample=sample), first])
        lines = table.splitlines()
        assert lines[1].split() == ["online", "a-node", "-", "-", "-"]
        assert lines[2].split() == ["stale", "b-node", "12.2", "50.0", "0.50"]


class TestRestartBackoff:
    def test_delays_double_up_to_thirty_seconds(self) -> None:
        """A child that keeps dying at once is restarted after 1, 2, 4 ... then every 30 s."""
        backoff = RestartBackoff()
        assert [backoff.next_delay_s(ran_for_s=0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]

    def test_a_stable_run_resets_the_delay(self) -> None:
        """A child that ran a minute or more before dying is restarted after 1 s again."""
        backoff = RestartBackoff()
        backoff.next_delay_s(0.5)
        backoff.next_delay_s(0.5)
        assert backoff.next_delay_s(ran_for_s=120.0) == 1


class TestViewerEndsRun:
    @pytest.mark.parametrize(
        ("returncode", "ends"),
        [(0, True), (-signal.SIGTERM, True), (-signal.SIGINT, True), (-signal.SIGHUP, True), (3, False), (1, False)],
    )
    def test_closed_or_signalled_viewer_ends_the_run(self, returncode: int, ends: bool) -> None:
        """Closing the viewer or a signal to it stops everything; a viewer that failed to start falls back."""
        assert viewer_ends_run(returncode) is ends


class TestSupervisor:
    def test_a_dead_child_is_reported_and_restarted_after_its_delay(self) -> None:
        """A child that exits is named with its status, then started again once its backoff has passed."""
        now = [0.0]
        said: list[str] = []

        def spawn(args: Sequence[str]) -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])

        supervisor = Supervisor(spawn, said.append, clock=lambda: now[0])
        child = supervisor.start("collector", "collector")
        assert child.proc is not None
        child.proc.wait(timeout=10)
        first = child.proc
        supervisor.watch()
        assert said == ["the collector exited with status 3; restarting in 1 s"]
        now[0] += 0.5
        supervisor.watch()
        assert child.proc is first
        now[0] += 0.6
        supervisor.watch()
        assert said[-1] == "restarting the collector"
        assert child.proc is not first
        supervisor.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_NO_DISPLAY = {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}
# What the wheel ships (pyproject's packages.find): no bench/, no tests/.
_WHEEL_PACKAGES = ("agent", "collector", "nodewatch", "shared", "viewer")


class UpRun:
    """``nodewatch up`` in its own session, its output in a file, stopped (SIGINT to the group) at the end.

    Its data and the agent's key live under ``tmp_path``, never in the system dirs: ``places`` replaces
    ``--data-dir tmp_path/data --state-dir tmp_path/NAME-agent-state`` (e.g. with ``--ephemeral``).
    """

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
        places: Sequence[str] | None = None,
        name: str = "up",
    ) -> None:
        self.port = _free_port()
        self.out_path = tmp_path / f"{name}.out"
        environ = {k: v for k, v in os.environ.items() if k not in _NO_DISPLAY}
        environ.update(env or {})
        if places is None:
            places = ("--data-dir", str(tmp_path / "data"), "--state-dir", str(tmp_path / f"{name}-agent-state"))
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "nodewatch",
                    "up",
                    "--port",
                    str(self.port),
                    "--interval",
                    "0.5",
                    *places,
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environ,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_interactive_signals,  # noqa: PLW1509 - only signal dispositions, set before exec
            )

    @property
    def text(self) -> str:
        """Everything printed so far."""
        return self.out_path.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float = 30.0) -> None:
        """Wait until ``predicate(output)`` holds; fail with the output's tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.text):
                return
            time.sleep(0.2)
        pytest.fail(self.text[-3000:])

    def child(self, subcommand: str) -> int:
        """The pid of the running child ``python -m nodewatch SUBCOMMAND`` (read from /proc)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for proc_dir in Path("/proc").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (proc_dir / "stat").read_text()
                    parent = int(stat.rsplit(")", 1)[1].split()[1])
                    argv = (proc_dir / "cmdline").read_bytes().split(b"\0")
                    if parent == self.proc.pid and argv[3:4] == [subcommand.encode()]:
                        return int(proc_dir.name)
            time.sleep(0.2)
        pytest.fail(f"no {subcommand} child: {self.text[-2000:]}")

    def stop(self) -> int:
        """SIGINT the whole group (Ctrl-C) and return the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=20)


def _interactive_signals() -> None:
    """SIGINT and SIGHUP at their defaults, as in a terminal (Ctrl-C is what ``stop`` sends).

    A suite started in the background by a non-interactive shell (``cmd &``, nohup) inherits
    them ignored, and ``nodewatch up`` rightly keeps an inherited ignore, so Ctrl-C would not reach it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def shows_online(node_id: str) -> Callable[[str], bool]:
    """A predicate: the headless table lists ``node_id`` as online."""
    return lambda text: any(line.split()[:2] == ["online", node_id] for line in text.splitlines() if line.strip())


@pytest.mark.slow
class TestUpWatchesItsChildren:
    def test_up_shows_this_machine_and_stops_cleanly(self, tmp_path: Path) -> None:
        """Headless ``nodewatch up`` prints this machine as online and stops every child on SIGINT."""
        run = UpRun(tmp_path)
        try:
            run.wait_for(shows_online(socket.gethostname()))
            assert "no viewer: no display found" in run.text
        finally:
            assert run.stop() == 0
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", run.port)) != 0, "the collector outlived nodewatch up"

    def test_a_dead_collector_is_reported_and_restarted(self, tmp_path: Path) -> None:
        """kill -9 of the collector is reported, the collector comes back, and the table goes on."""
        run = UpRun(tmp_path, "--headless")
        try:
            run.wait_for(shows_online(socket.gethostname()))
            os.kill(run.child("collector"), signal.SIGKILL)
            run.wait_for(lambda text: "the collector exited with status -9; restarting in 1 s" in text)
            run.wait_for(lambda text: "restarting the collector" in text)
            mark = len(run.text)
            run.wait_for(lambda text: shows_online(socket.gethostname())(text[mark:]))
        finally:
            assert run.stop() == 0

    def test_the_url_line_is_not_buried_by_per_node_log_lines(self, tmp_path: Path) -> None:
        """Children log at WARNING: the output has the collector's URL and no INFO lines."""
        run = UpRun(tmp_path, "--headless", "--simulate", "5")
        try:
            run.wait_for(shows_online("sim-00004"))
            assert f"collector at http://127.0.0.1:{run.port}" in run.text
            assert " INFO " not in run.text
        finally:
            assert run.stop() == 0

    def test_a_viewer_ended_by_sigterm_ends_the_run(self, tmp_path: Path) -> None:
        """SIGTERM to the viewer stops everything; no 'no viewer' fallback to the headless table."""
        run = UpRun(tmp_path, env={"QT_QPA_PLATFORM": "offscreen"})
        try:
            viewer = run.child("viewer")
            # Its SIGTERM handler is in place before it subscribes (a second after start is not enough on
            # a loaded machine: the signal then ended a viewer still importing Qt).
            _wait_for_subscribers(run.port, 1)
            os.kill(viewer, signal.SIGTERM)
            assert run.proc.wait(timeout=20) == 0
            assert "the viewer was closed" in run.text
            assert "no viewer" not in run.text
        finally:
            run.stop()
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", run.port)) != 0, "the collector outlived nodewatch up"

    def test_simulate_works_from_the_wheel_packages_alone(self, tmp_path: Path) -> None:
        """With only the packages the wheel ships (no bench/), --simulate runs a fleet and says what it does."""
        site = tmp_path / "site"
        for package in _WHEEL_PACKAGES:
            shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
        run = UpRun(tmp_path, "--headless", "--simulate", "3", env={"PYTHONPATH": str(site)}, cwd=tmp_path)
        try:
            run.wait_for(shows_online("sim-00002"))
            assert "3 simulated nodes" in run.text
            assert "stops after 60 min" in run.text
        finally:
            assert run.stop() == 0


# A stand-in for a live but degraded collector: health answers 503 with a JSON body, as collector.http_api does.
_DEGRADED_SERVER = """
import http.server, json, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        degraded = {"status": "degraded", "reason": "store: disk full"}
        body = json.dumps(degraded).encode() if sys.argv[1] == "json" else b"busy"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Health)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class TestWaitForCollector:
    @pytest.mark.parametrize(("body", "up", "degraded"), [("json", True, "store: disk full"), ("text", False, None)])
    def test_a_degraded_collector_counts_as_up(self, body: str, up: bool, degraded: str | None) -> None:
        """A 503 with the collector's JSON body is a live, degraded collector; a bare 503 from anything else is not."""
        with subprocess.Popen([sys.executable, "-c", _DEGRADED_SERVER, body], stdout=subprocess.PIPE) as server:
            try:
                assert server.stdout is not None
                port = int(server.stdout.readline())
                start = wait_for_collector(f"http://127.0.0.1:{port}/api/v1/health", server, timeout_s=2.0)
            finally:
                server.kill()
        assert (start.up, start.degraded) == (up, degraded)

    def test_a_childs_stderr_is_held_until_released_then_passed_through(self) -> None:
        """Until the collector is up its stderr is held (so ``up`` can quote it); after that every line shows."""
        out = io.StringIO()
        # The child says "late" only once told to (a line on stdin): no race with release().
        script = "import sys; print('early', file=sys.stderr, flush=True); sys.stdin.readline(); "
        script += "print('late', file=sys.stderr)"
        argv = [sys.executable, "-c", script]
        with subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as child:
            assert child.stderr is not None
            assert child.stdin is not None
            relay = StderrRelay(child.stderr, out, hold=True)
            deadline = time.monotonic() + 10
            while not relay.held_lines() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert out.getvalue() == ""
            relay.release()
            assert out.getvalue() == "early\n"
            child.stdin.write(b"go\n")
            child.stdin.close()
            child.wait(timeout=10)
            assert relay.drain() == []
        assert out.getvalue() == "early\nlate\n"

    def test_ephemeral_and_data_dir_together_are_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``up --ephemeral --data-dir D`` names both settings and exits 2 before starting anything."""
        with pytest.raises(SystemExit) as exited:
            up_main(["--ephemeral", "--data-dir", "/tmp/x"])
        assert exited.value.code == 2
        assert "--ephemeral and --data-dir: expected one of them" in capsys.readouterr().err


def _wait_for_subscribers(port: int, count: int, timeout_s: float = 60.0) -> None:
    """Until the collector's health counts ``count`` subscribers (a viewer that has connected)."""
    deadline = time.monotonic() + timeout_s
    seen: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as response:
                seen = json.load(response).get("subscribers")
            if isinstance(seen, int) and seen >= count:
                return
        time.sleep(0.1)
    pytest.fail(f"health never counted {count} subscribers (last: {seen!r})")


def _nodes(port: int) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nodes", timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    return {entry["status"]["node_id"]: entry for entry in body["nodes"]}


@pytest.mark.slow
class TestUpKeepsItsData:
    @pytest.mark.parametrize(("places", "shown"), [(None, "data"), (("--ephemeral",), "in memory")])
    def test_up_says_where_the_data_lives(self, tmp_path: Path, places: Sequence[str] | None, shown: str) -> None:
        """On start, ``up`` prints the collector's data dir, or that the data is in memory only."""
        if places is not None:
            places = (*places, "--state-dir", str(tmp_path / "agent-state"))
        run = UpRun(tmp_path, places=places)
        try:
            run.wait_for(lambda text: "nodewatch up: data: " in text)
            expected = str(tmp_path / "data") if shown == "data" else shown
            assert f"nodewatch up: data: {expected}\n" in run.text
        finally:
            assert run.stop() == 0

    @pytest.mark.skipif(os.geteuid() == 0, reason="as root the default is /var/lib/nodewatch, which tests never touch")
    def test_make_run_keeps_its_data_in_the_users_state_dir(self, tmp_path: Path) -> None:
        """Without --data-dir (as ``make run``) a user's data goes to $XDG_STATE_HOME/nodewatch, as up says."""
        state = tmp_path / "state"
        env = {"XDG_STATE_HOME": str(state), "HOME": str(tmp_path / "home"), "STATE_DIRECTORY": ""}
        run = UpRun(tmp_path, places=(), env=env)
        try:
            run.wait_for(shows_online(socket.gethostname()))
            assert f"nodewatch up: data: {state / 'nodewatch'}\n" in run.text
            assert (state / "nodewatch" / "collector.lock").exists()
            assert (tmp_path / "home" / ".local" / "state" / "nodewatch-agent").is_dir()
        finally:
            assert run.stop() == 0

    def test_a_locked_data_dir_stops_up_with_the_collectors_message(self, tmp_path: Path) -> None:
        """A data dir held by another collector: ``up`` shows that collector's pid and exits 2, not 'is port free?'."""
        data = tmp_path / "data"
        argv = [sys.executable, "-m", "nodewatch", "collector", "--bind", "127.0.0.1:0", "--data-dir", str(data)]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=REPO) as holder:
            try:
                assert holder.stdout is not None
                assert "listening on" in holder.stdout.readline().decode()
                run = UpRun(tmp_path)
                assert run.proc.wait(timeout=30) == 2
            finally:
                holder.terminate()
        assert f"another collector (pid {holder.pid}) uses this data dir" in run.text
        assert "nodewatch up: the collector cannot use its data dir" in run.text
        assert "is port" not in run.text

    def test_a_second_run_shows_the_first_runs_node(self, tmp_path: Path) -> None:
        """Issue 12: a second ``make run`` on one data dir shows yesterday's node, offline, with its sample."""
        first = UpRun(tmp_path, "--node-id", "yesterday", name="first")
        try:
            first.wait_for(shows_online("yesterday"))
        finally:
            assert first.stop() == 0
        second = UpRun(tmp_path, "--node-id", "today", name="second")
        try:
            second.wait_for(shows_online("today"))
            assert "yesterday" in _nodes(second.port)  # back at once, from the store
            # Judged by the normal rules from the collector's start: offline within 10 of its 0.5 s intervals.
            second.wait_for(lambda _text: _nodes(second.port)["yesterday"]["status"]["state"] == "offline")
            yesterday = _nodes(second.port)["yesterday"]
            assert yesterday["last_sample"]["cpu_percent"] is not None, yesterday
        finally:
            assert second.stop() == 0
