"""What the alert tests' webhook receiver recorded (the ``webhook`` fixture in conftest fills it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Webhook:
    """A JSON webhook on loopback: what Apprise's ``json://`` URL posts to, in order of arrival."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def titles(self) -> list[str]:
        """The title of every notification received."""
        return [str(post.get("title", "")) for post in self.posts]
