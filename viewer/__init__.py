"""nodewatch viewer: a PyQt6 window that follows a collector's subscribe stream live.

Layout: ``format``, ``backoff`` and ``batching`` are pure (no Qt, no asyncio);
``link`` is the network boundary (one QObject, aiohttp in a background thread);
``model``, ``detail`` and ``window`` are UI-thread widgets; ``cli`` is the entry point.
The viewer never imports ``agent`` or ``collector``: it meets them only in ``shared``.
"""
