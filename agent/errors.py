"""The agent's one error for a bad setting, shared by ``agent.config`` and ``agent.labels``."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting has a value it cannot accept; the message names the setting and what it accepts."""
