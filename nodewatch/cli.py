"""Dispatch ``nodewatch SUBCOMMAND ...`` to the package that owns the subcommand.

Each target module exposes ``main(argv: Sequence[str] | None = None) -> int``
and is imported only once chosen: ``nodewatch agent --help`` must not pay
for PyQt6 or the collector.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from shared import __version__

# subcommand -> (module with main(), one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("agent.cli", "sample this machine and push heartbeats to a collector"),
    "collector": ("collector.cli", "hold the fleet's state and serve it over HTTP and websockets"),
    "viewer": ("viewer.cli", "the PyQt6 desktop window that follows a collector live"),
    "up": ("nodewatch.up", "run a collector, a local agent and the viewer together"),
    "simulate": ("nodewatch.simulate", "run N simulated agents against a loopback collector (load, demos)"),
    "admin": ("nodewatch.admin", "forget nodes, rotate or pin node keys on a collector (admin token)"),
}


# A node installs only the agent (pip install nodewatch); the other programs need an extra.
EXTRA_FOR_MODULE: dict[str, str] = {
    "aiohttp": "collector",
    "pydantic": "collector",
    "prometheus_client": "collector",
    "PyQt6": "viewer",
    "pyqtgraph": "viewer",
}


def _usage() -> str:
    lines = ["usage: nodewatch {" + ",".join(SUBCOMMANDS) + "} [options]", "", "subcommands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "Run 'nodewatch SUBCOMMAND --help' for its options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen subcommand and return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"nodewatch {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(_usage(), file=sys.stderr)
        print(f"\nnodewatch: error: expected one of {', '.join(SUBCOMMANDS)}, got {name!r}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
        result: int = module.main(rest)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in EXTRA_FOR_MODULE:
            raise
        extra = "collector,viewer" if name == "up" else EXTRA_FOR_MODULE[missing]
        print(
            f"nodewatch {name}: needs {missing}, which a node's install leaves out: pip install 'nodewatch[{extra}]'",
            file=sys.stderr,
        )
        return 2
    return result
