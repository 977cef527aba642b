"""``nodewatch agent``: parse settings, set up logging and signals, run the agent until told to stop.

Keeps its imports lean: ``--help`` loads only the standard library and
``agent.config``; aiohttp and psutil come in once there is an agent to
run (and pydantic never: see ``agent.wire``). Not here: any sampling or network logic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from agent.config import AgentConfig, parse_args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; return 0 after SIGTERM/SIGINT, 2 for bad settings (via argparse)."""
    config = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    asyncio.run(_run(config))
    return 0


async def _run(config: AgentConfig) -> None:
    from agent.runner import Agent  # noqa: PLC0415 - aiohttp and psutil load only when an agent runs

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await Agent(config).run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
