"""Fixtures for the fault tests: a process group that kills everything it started, even on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessGroup


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Start collectors and agents as subprocesses; every one is killed at teardown."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.close()
