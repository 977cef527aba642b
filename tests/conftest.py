"""Test-wide setup. Qt must run offscreen, or it aborts the whole pytest process without a display.

Agents started by tests (in process or as subprocesses, which inherit the environment) keep their
node key in a private temporary state dir, never in the machine's /var/lib/nodewatch-agent.
"""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessGroup

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NODEWATCH_STATE_DIR", tempfile.mkdtemp(prefix="nodewatch-test-agent-state-"))


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Collector and agent subprocesses under ``tmp_path``, every one killed at teardown."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.close()
