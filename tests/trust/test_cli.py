"""Issue 13, finding 16c, against a real ``nodewatch collector`` process: an open bind says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def test_bind_all_interfaces_insecure_prints_the_real_address_and_a_warning(tmp_path: Path) -> None:
    """``--bind 0.0.0.0:0 --insecure`` prints 0.0.0.0 (not 127.0.0.1) and warns that no token is checked."""
    root = Path(__file__).resolve().parents[2]  # the tree under test, whatever the venv has installed
    env = {**os.environ, "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path), "PYTHONPATH": str(root)}
    env.pop("NODEWATCH_AGENT_TOKENS", None)
    env.pop("NODEWATCH_VIEWER_TOKENS", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nodewatch",
            "collector",
            "--bind",
            "0.0.0.0:0",
            "--insecure",
            "--ephemeral",
            "--log-level",
            "ERROR",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        listening = proc.stdout.readline()
        warning = proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert listening.startswith("nodewatch collector listening on http://0.0.0.0:"), listening
    assert "every interface" in listening
    assert "warning: --insecure" in warning
    assert "without a token" in warning
