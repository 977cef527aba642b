"""Benchmarks and load generators; scripts run as ``python bench/NAME.py``, importable for tests.

Modules named ``_*`` are not benches but what benches share: ``_stats`` (the one
percentile and median), ``_procs``/``_proxy``/``_recorder``/``_flood`` and the two
``python -m`` helpers (real processes and faults, also used by the fault tests through
``tests.support.processes``). A bench never imports ``tests``.
"""
