"""Benchmarks and load generators; scripts run as ``python bench/NAME.py``, importable for tests."""
