"""Tests of the wire protocol package ``shared``."""
