"""The collector process's startup chores: open-files limit, admission limit, GC tuning, the listen banner.

``serve`` (``collector.cli``) calls these once, around binding the port. They
read and set process state (rlimits, the garbage collector, stdout), so they
live apart from option parsing; each takes what it needs as arguments.

Not here: options and the config (``collector.cli``), the admission site
itself (``collector.admission``).
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import logging
import resource
import sys

from collector.config import CollectorConfig

log = logging.getLogger("nodewatch.collector")

# Garbage-collector thresholds (CPython's default is 700, 10, 10). In steady state almost every
# allocation is freed by reference counting (a heartbeat replaces the node's previous one), so the
# net allocation count that triggers a young collection barely moves. At 700 a young pass ran every
# few milliseconds, promoted each node's ~1 s old sample, and so set off full collections over every
# connection's objects: 100-200 ms event-loop stalls at 3,000 nodes (bench/e2e.py, gc.callbacks).
# At 20,000 steady-state collections over 3 ms vanished; the connect storm still has some.
GC_THRESHOLDS = (20_000, 10, 10)
# File descriptors besides agent sockets: listeners, subscribers, HTTP clients, logs.
FD_HEADROOM = 64


def raise_nofile_limit(max_nodes: int) -> int:
    """Raise the open-files soft limit to the hard limit (each agent holds a socket); warn if still short.

    Many systems start processes with a soft limit of 1,024, which would refuse agents long
    before ``--max-nodes``: accept() fails with EMFILE and asyncio logs a traceback per try.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < max_nodes + FD_HEADROOM:
        log.warning(
            "open-files limit is %d, below --max-nodes %d + %d: agents beyond it will be refused at accept()",
            soft,
            max_nodes,
            FD_HEADROOM,
        )
    return soft


def connection_limit(config: CollectorConfig, open_files: int) -> int:
    """Open connections past which new ingest requests get a 503: --max-nodes plus a margin, within the fd limit.

    Past the open-files limit accept() fails with EMFILE, and asyncio retries and logs a traceback per
    try, which starves the loop (seen at 20,000 nodes against a hard limit of 20,000). Below it, an
    agent too many is accepted, answered 503 with Retry-After, and closed: the collector stays healthy.
    asyncio accepts up to ``backlog`` sockets in one go before any of them is counted, hence that room.
    """
    wanted = config.max_nodes + config.connection_margin
    if open_files == resource.RLIM_INFINITY:
        return wanted
    # The backlog's room is at most a quarter of the fds: a low limit must not leave room for one agent.
    limit = max(1, min(wanted, open_files - FD_HEADROOM - min(config.backlog, open_files // 4)))
    if limit < wanted:
        log.warning(
            "admission limit is %d ingest connections (open-files limit %d, minus %d spare and %d for the "
            "accept backlog), below --max-nodes %d + %d: raise the hard limit (LimitNOFILE=) to admit them all",
            limit,
            open_files,
            FD_HEADROOM,
            min(config.backlog, open_files // 4),
            config.max_nodes,
            config.connection_margin,
        )
    return limit


def tune_gc() -> None:
    """Freeze what startup allocated (modules, classes, the app) and raise the young-generation threshold.

    Frozen objects are never traversed again, so every later collection is shorter; they are
    still freed by reference counting. See GC_THRESHOLDS for why the threshold is raised.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP literals; any other name counts as reachable from the network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def announce(config: CollectorConfig, tls: bool, port: int) -> None:
    """Print where the collector listens, and warn on stderr when --insecure leaves a public port open."""
    scheme = "https" if tls else "http"
    shown_host = "127.0.0.1" if config.host in {"0.0.0.0", "::", ""} else config.host  # noqa: S104 - comparing, not binding
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    url = f"{scheme}://{shown_host}:{port}"
    if config.host in {"0.0.0.0", "::", ""}:  # noqa: S104 - comparing, not binding
        bound = f"{scheme}://{'[::]' if config.host == '::' else '0.0.0.0'}:{port}"  # noqa: S104 - shown, not bound
        print(f"nodewatch collector listening on {bound}, every interface (this machine: {url})", flush=True)
    else:
        print(f"nodewatch collector listening on {url} (health: {url}/api/v1/health)", flush=True)
    if config.insecure and not is_loopback(config.host):
        print(
            f"nodewatch collector: warning: --insecure on {config.host or '0.0.0.0'}:{port}: "  # noqa: S104
            "agents and viewers reach this port without a token"
            + ("" if tls else ", and in clear text (no --tls-cert)"),
            file=sys.stderr,
            flush=True,
        )
