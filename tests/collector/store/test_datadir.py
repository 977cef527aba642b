"""Where the store lives by default, as root and as a user."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.store.datadir import default_data_dir

HOME = Path("/home/ada")


@pytest.mark.parametrize(
    ("env", "euid", "expected"),
    [
        ({}, 0, Path("/var/lib/nodewatch")),  # root: the FHS place, systemd's StateDirectory=
        ({"XDG_STATE_HOME": "/home/ada/.state"}, 0, Path("/var/lib/nodewatch")),
        ({}, 1000, HOME / ".local/state/nodewatch"),
        ({"XDG_STATE_HOME": "/srv/state"}, 1000, Path("/srv/state/nodewatch")),
        ({"XDG_STATE_HOME": "relative/state"}, 1000, HOME / ".local/state/nodewatch"),  # the spec: ignore it
        ({"XDG_STATE_HOME": ""}, 1000, HOME / ".local/state/nodewatch"),
    ],
)
def test_default_data_dir(env: dict[str, str], euid: int, expected: Path) -> None:
    """Root gets /var/lib/nodewatch; a user gets the XDG state dir, an invalid one being ignored."""
    assert default_data_dir(env, euid, HOME) == expected
