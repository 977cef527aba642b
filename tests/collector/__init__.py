"""Tests of the collector: pure core units and a real aiohttp server on loopback."""
