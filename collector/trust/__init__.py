"""The trust model's pure parts: node identity (TOFU), seq and time sanity, and per-connection budgets.

Every module here is plain code over values: no asyncio, aiohttp, sqlite or
sockets, and no clock of its own (each call takes ``now``, monotonic, or
``wall``, epoch seconds). Each returns its decision as a value (``Refusal``,
``Accept``, a victim node id) for the ingest shell to execute.

Not here: wiring into ``IngestSession`` / ``NodeCache``, persistence (the store
keeps ``identity.KeyRecord`` values), or the admin HTTP API. docs/security.md
is the threat model these parts answer.
"""
