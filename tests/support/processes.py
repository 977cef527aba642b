"""Real subprocesses for tests: collectors, agents, a fault proxy, a recording subscriber and floods.

The one copy of this plumbing lives in ``bench/`` (``_procs``, ``_proxy``,
``_recorder``, ``_flood``), because ``bench/faults.py`` runs the same
scenarios bigger and benches never import tests. Tests import it from here,
so a test never names a bench module for its fixtures. Not here: in-process
collectors (``tests.support.collector``).
"""

from __future__ import annotations

from bench._flood import HealthProbe, storm
from bench._procs import (
    REPO,
    CollectorProc,
    ProcessGroup,
    Restart,
    Spawned,
    agent_connections,
    gaps,
    get_json,
    health,
    kill_and_restart,
    last_seqs,
    metric,
    node,
    protocol_errors,
    rss_bytes,
    wait_until,
)
from bench._proxy import FaultProxy
from bench._recorder import StateRecorder, Transition

__all__ = [
    "REPO",
    "CollectorProc",
    "FaultProxy",
    "HealthProbe",
    "ProcessGroup",
    "Restart",
    "Spawned",
    "StateRecorder",
    "Transition",
    "agent_connections",
    "gaps",
    "get_json",
    "health",
    "kill_and_restart",
    "last_seqs",
    "metric",
    "node",
    "protocol_errors",
    "rss_bytes",
    "storm",
    "wait_until",
]
