"""Fixtures for the alert end-to-end tests: real processes, and a webhook receiver Apprise posts to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.alerts.webhook import Webhook


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    """An aiohttp server on 127.0.0.1, port 0, recording every JSON body posted to /hook."""
    hook = Webhook(url="")

    async def receive(request: web.Request) -> web.Response:
        hook.posts.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"json://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()
