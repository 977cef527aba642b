"""A minimal viewer stand-in run as a subprocess, so a test can SIGSTOP it: subscribe and read, forever.

Prints ``subscribed`` once the snapshot is in, then one line when the
connection ends: ``closed <code> <reason>`` or ``dropped <error>``. Not a
viewer: it decodes nothing past the frame type.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import aiohttp


async def run(url: str, deadline_s: float) -> str:
    """Read every message until the collector ends the connection or ``deadline_s`` passes."""
    async with aiohttp.ClientSession() as session:
        try:
            async with asyncio.timeout(deadline_s), session.ws_connect(url, max_msg_size=2**28) as ws:
                messages = 0
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.ERROR:
                        return f"dropped {ws.exception()!r}"
                    messages += 1
                    if messages == 1:
                        print("subscribed", flush=True)
                return f"closed {ws.close_code}"
        except TimeoutError:
            return "deadline"
        except (aiohttp.ClientError, OSError) as exc:
            return f"dropped {exc!r}"


def main(argv: Sequence[str] | None = None) -> int:
    """Subscribe to ``--url`` and report how the connection ended."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/api/v1/subscribe[?format=json]")
    parser.add_argument("--deadline", type=float, default=120.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    print(asyncio.run(run(args.url, args.deadline)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
