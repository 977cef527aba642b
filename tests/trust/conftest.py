"""Fixtures for the trust regression tests: the in-process collector from tests/support, and a process group."""

import pytest

from tests.support.collector import make_client
from tests.support.processes import ProcessGroup

__all__ = ["group", "make_client"]


@pytest.fixture
def group(procs: ProcessGroup) -> ProcessGroup:
    """The trust tests' name for the suite-wide ``procs`` fixture (tests/conftest.py)."""
    return procs
