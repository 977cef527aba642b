"""mountinfo parsing: the fields the agent uses, escapes undone, bad lines skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.procfs import HostPaths, MountEntry, parse_mountinfo, read_mountinfo


class TestMountinfo:
    def test_fields_and_escapes(self) -> None:
        """Optional fields before the '-' are skipped and a space in a mount point (\\040) comes back as a space."""
        line = (
            "36 28 252:17 /sub /mnt/backup\\040disk ro,relatime shared:9 master:2 - ext4 /dev/vdb1 rw,errors=remount-ro"
        )
        assert parse_mountinfo(line) == [
            MountEntry(
                "/sub",
                "/mnt/backup disk",
                frozenset({"ro", "relatime"}),
                "ext4",
                "/dev/vdb1",
                frozenset({"rw", "errors=remount-ro"}),
            )
        ]

    @pytest.mark.parametrize("line", ["", "garbage", "1 2 3 4 5 6 7", "36 28 252:17 / /x rw - ext4"])
    def test_malformed_lines_are_skipped(self, line: str) -> None:
        """A line without the separator or the fields after it is left out, never raised on."""
        assert parse_mountinfo(line) == []

    def test_no_procfs(self, tmp_path: Path) -> None:
        """Where there is no /proc (macOS), there is no mount table rather than an empty one."""
        assert read_mountinfo(HostPaths.under(tmp_path)) is None

    def test_mount_points_resolve_under_rootfs(self, tmp_path: Path) -> None:
        """A mount point of the table is a path under the injected root, as node_exporter's --path.rootfs."""
        assert HostPaths.under(tmp_path).mounted("/srv/data") == tmp_path / "srv" / "data"
        assert HostPaths().mounted("/") == Path("/")
