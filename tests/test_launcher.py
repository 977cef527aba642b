"""The ``nodewatch`` launcher: subcommand dispatch and ``nodewatch up``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodewatch.cli import main
from nodewatch.up import format_table, has_display
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
class TestUpHeadless:
    def test_up_shows_this_machine_and_stops_cleanly(self, tmp_path: Path) -> None:
        """Headless ``nodewatch up`` prints this machine as online and stops every child on SIGINT."""
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}}
        out_path = tmp_path / "up.out"
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nodewatch", "up", "--port", str(port), "--interval", "0.5"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                start_new_session=True,
            )
        hostname = socket.gethostname()
        deadline = time.monotonic() + 30
        seen = False
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                text = out_path.read_text(errors="replace")
                if any(line.split()[:2] == ["online", hostname] for line in text.splitlines() if line.strip()):
                    seen = True
                    break
                time.sleep(0.2)
            assert seen, out_path.read_text(errors="replace")[-3000:]
            assert "no viewer: no display found" in out_path.read_text()
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=15)
        assert code == 0
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "the collector outlived nodewatch up"
