"""Fixtures for the trust regression tests: registered here, defined in tests/support."""

from tests.support.collector import make_client

__all__ = ["make_client"]
