"""Every touch of a private aiohttp name, fenced in one module.

aiohttp gives no public way to do these three things, and the collector needs
them. Each function names what it borrows; ``tests/collector/test_aiohttp_private.py``
has a canary per name that fails when an aiohttp release changes it, and
pyproject pins aiohttp to the minor range the canaries passed on.

- ``open_connections``: ``web.Server._connections``, a dict of live protocol
  handlers (``Server.connections`` copies it into a list: O(n) per accept).
- ``serve_with_factory``: ``web.TCPSite.start`` with our protocol factory in
  place of the runner's server, reading the site's private fields and
  ``BaseRunner._reg_site``.
- ``site_server``: ``BaseSite._runner``, to reach the runner's ``web.Server``.
- ``cancel_heartbeat``: ``WebSocketResponse._cancel_heartbeat()``, see its docstring.
- ``queued_binary``, ``queued`` and ``take_queued``: ``WebSocketResponse._reader``, the queue
  aiohttp's parser fills (its ``_buffer`` of ``(message, size)``, ``is_eof()`` and ``read()``),
  so the ingest shell can take a parsed binary frame in the transport's callback instead of
  waking its task per frame (``collector.ingest``).

Not here: anything public (``request.transport``, ``ws.close``), and policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import WSMessage, WSMsgType, web


def open_connections(server: web.Server) -> int:
    """How many connections ``server`` holds now, in O(1)."""
    return len(server._connections)


def site_server(site: web.BaseSite) -> web.Server:
    """The ``web.Server`` of the runner ``site`` was made for (set once the runner is set up)."""
    server = site._runner.server
    if server is None:
        raise RuntimeError("expected a runner that was set up, got one with no server")
    return server


async def serve_with_factory(site: web.TCPSite, factory: Callable[[], asyncio.BaseProtocol]) -> None:
    """``TCPSite.start``, but every accepted connection gets ``factory()`` as its protocol."""
    site._runner._reg_site(site)
    loop = asyncio.get_running_loop()
    site._server = await loop.create_server(
        factory,
        site._host,
        site._port,
        ssl=site._ssl_context,
        backlog=site._backlog,
        reuse_address=site._reuse_address,
        reuse_port=site._reuse_port,
    )
    site._bound_port = site._server.sockets[0].getsockname()[1] if site._server.sockets else site._port


def cancel_heartbeat(ws: web.WebSocketResponse) -> None:
    """Cancel the websocket's ping timer once its handler is done.

    aiohttp 3.14 leaves a WebSocketResponse's ping timer scheduled (``heartbeat``
    seconds ahead) when the connection ended by a protocol error of the peer or by
    the peer vanishing, and that timer holds the request, its handler and its
    transport. At thousands of refusals per second that kept ~100,000 dead
    connections alive and a collector under a 256 MiB limit died of MemoryError.
    ``tests/collector/test_aiohttp_private.py`` shows the leak without this call.
    """
    ws._cancel_heartbeat()


def queued_binary(ws: web.WebSocketResponse) -> bool:
    """Whether the next message aiohttp parsed for ``ws`` and queued is a binary one."""
    reader = ws._reader
    if reader is None:
        return False
    buffer = reader._buffer
    return bool(buffer) and buffer[0][0].type is WSMsgType.BINARY


def queued(ws: web.WebSocketResponse) -> bool:
    """Whether ``receive()`` on ``ws`` has something now: a queued message, or the end of the stream."""
    reader = ws._reader
    return reader is not None and (bool(reader._buffer) or reader.is_eof())


def take_queued(ws: web.WebSocketResponse) -> WSMessage:
    """The next queued message, taken at once (call only after ``queued_binary``), as ``receive()`` returns it.

    For a binary message ``receive()`` only reads the queue; its ``read()`` returns without
    waiting when the queue holds one, and keeps the queue's byte count and flow control right.
    """
    reader = ws._reader
    if reader is None:
        raise RuntimeError("expected a prepared websocket, got one with no reader")
    step = reader.read()
    try:
        step.send(None)
    except StopIteration as done:
        message: WSMessage = done.value
        return message
    step.close()
    raise RuntimeError("expected a queued message, got a read that waits")
