"""``nodewatch agent``: parse settings, set up logging and signals, run the agent until told to stop.

Keeps its imports lean: ``--help`` loads only the standard library and
``agent.config``; psutil and the transport come in once there is an agent to
run (and pydantic, asyncio and aiohttp never: see ``agent.wire`` and
``agent.pusher``). Not here: any sampling or network logic.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from agent.config import parse_args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; return 0 after SIGTERM/SIGINT, 2 for bad settings (via argparse)."""
    config = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from agent.runner import Agent  # noqa: PLC0415 - psutil and the transport load only when an agent runs

    agent = Agent(config)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        agent.stop()  # sets a flag and writes to the loop's wake-up socket; the loop closes cleanly

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
