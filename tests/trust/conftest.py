"""Fixtures for the trust regression tests: the in-process collector from tests/support, and a process group."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.collector import make_client
from tests.support.processes import ProcessGroup

__all__ = ["group", "make_client"]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """A process group under ``tmp_path`` whose processes are all killed at the end."""
    procs = ProcessGroup(tmp_path)
    try:
        yield procs
    finally:
        procs.close()
