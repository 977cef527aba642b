"""Tests of the collector's durable store: pure policy, and the SQLite engine on real files."""
