"""Tests for the agent: pure cores, the sampler, the pusher against real loopback servers, the CLI."""
