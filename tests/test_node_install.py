"""A node's install (``pip install nodewatch``) has no collector or viewer dependencies: say what to add."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run the real CLI in a fresh interpreter where the named modules cannot be imported, as on a node.
PROGRAM = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from nodewatch.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _run(blocked: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, blocked, *argv], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("blocked", "subcommand", "extra"),
    [
        ("aiohttp,pydantic,prometheus_client", "collector", "nodewatch[collector]"),
        ("prometheus_client", "collector", "nodewatch[collector]"),
        ("PyQt6,pyqtgraph", "viewer", "nodewatch[viewer]"),
        ("aiohttp", "up", "nodewatch[collector,viewer]"),
    ],
)
def test_missing_extra_is_named(blocked: str, subcommand: str, extra: str) -> None:
    """A subcommand whose extra is not installed exits 2 with the pip line to run, not a traceback."""
    proc = _run(blocked, subcommand, "--help")
    assert proc.returncode == 2
    assert f"pip install '{extra}'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_agent_needs_no_extra() -> None:
    """The agent's help works where aiohttp, pydantic, prometheus-client and Qt are all absent."""
    proc = _run("aiohttp,pydantic,prometheus_client,PyQt6,pyqtgraph", "agent", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--collector" in proc.stdout
