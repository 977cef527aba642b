"""The node key in the agent's state dir: created once 0600, refused when unsafe, never silently replaced."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from agent.identity import (
    KEY_FILE,
    NodeKeyError,
    fingerprint,
    load_or_create_node_key,
    lock_state_dir,
    node_credential,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _load_in_child(state_dir: str, queue: multiprocessing.Queue[str]) -> None:
    queue.put(load_or_create_node_key(Path(state_dir)).hex())


class TestLoadOrCreateNodeKey:
    def test_first_start_creates_a_private_key_and_later_starts_read_it(self, tmp_path: Path) -> None:
        """The first start writes 32 random bytes as hex, 0600 in a 0700 dir; every later start gets the same key."""
        state_dir = tmp_path / "state"
        key = load_or_create_node_key(state_dir)
        assert len(key) == 32
        assert _mode(state_dir) == 0o700
        assert _mode(state_dir / KEY_FILE) == 0o600
        assert (state_dir / KEY_FILE).read_text() == key.hex() + "\n"
        assert load_or_create_node_key(state_dir) == key
        assert sorted(p.name for p in state_dir.iterdir()) == [KEY_FILE], "no temporary file is left behind"

    def test_two_machines_get_different_keys(self, tmp_path: Path) -> None:
        """Keys come from the OS's random source: two fresh state dirs never share one."""
        assert load_or_create_node_key(tmp_path / "a") != load_or_create_node_key(tmp_path / "b")

    def test_agents_starting_together_agree_on_one_key(self, tmp_path: Path) -> None:
        """Four agent processes creating the key at once all end up with the one key that was linked first."""
        ctx = multiprocessing.get_context("fork")
        queue: multiprocessing.Queue[str] = ctx.Queue()
        children = [ctx.Process(target=_load_in_child, args=(str(tmp_path), queue)) for _ in range(4)]
        for child in children:
            child.start()
        keys = {queue.get(timeout=30) for _ in children}
        for child in children:
            child.join(timeout=30)
        assert keys == {(tmp_path / KEY_FILE).read_text().strip()}
        assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]

    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o602, 0o644])
    def test_a_key_others_can_read_is_refused_and_kept(self, tmp_path: Path, mode: int) -> None:
        """A key file with any group or other bit set stops the agent with the mode and the chmod to run."""
        key = load_or_create_node_key(tmp_path)
        (tmp_path / KEY_FILE).chmod(mode)
        with pytest.raises(NodeKeyError, match=r"expected mode 0600 .* chmod 600 it"):
            load_or_create_node_key(tmp_path)
        assert (tmp_path / KEY_FILE).read_text() == key.hex() + "\n", "the key is never rewritten"

    def test_a_state_dir_others_can_write_is_refused(self, tmp_path: Path) -> None:
        """If others may write the state dir they could swap the key, so the agent refuses to start."""
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        state_dir.chmod(0o777)
        with pytest.raises(NodeKeyError, match=r"state dir .*expected mode 0700"):
            load_or_create_node_key(state_dir)
        assert not (state_dir / KEY_FILE).exists()

    def test_a_key_owned_by_another_user_is_refused(self, tmp_path: Path) -> None:
        """A key file that belongs to someone else is not this agent's identity."""
        load_or_create_node_key(tmp_path)
        os.chown(tmp_path / KEY_FILE, os.geteuid() + 4242, -1)
        with pytest.raises(NodeKeyError, match=r"expected to be owned by uid"):
            load_or_create_node_key(tmp_path)

    def test_a_symlinked_key_is_refused(self, tmp_path: Path) -> None:
        """A symlink in place of the key is not followed: someone could point it at another node's key."""
        real = tmp_path / "elsewhere"
        load_or_create_node_key(real)
        state_dir = tmp_path / "state"
        state_dir.mkdir(mode=0o700)
        (state_dir / KEY_FILE).symlink_to(real / KEY_FILE)
        with pytest.raises(NodeKeyError, match=r"usable state dir and key file"):
            load_or_create_node_key(state_dir)

    def test_a_state_dir_that_is_a_file_is_refused(self, tmp_path: Path) -> None:
        """A mistyped --state-dir pointing at a file stops the agent with what it found."""
        (tmp_path / "file").write_text("x")
        with pytest.raises(NodeKeyError, match=r"expected a directory"):
            load_or_create_node_key(tmp_path / "file")

    def test_a_key_path_that_is_a_directory_is_refused(self, tmp_path: Path) -> None:
        """Something other than a regular file where the key belongs is refused, not replaced."""
        (tmp_path / KEY_FILE).mkdir(mode=0o700)
        with pytest.raises(NodeKeyError, match=r"expected a regular file"):
            load_or_create_node_key(tmp_path)

    @pytest.mark.parametrize(
        "content",
        [b"", b"abc\n", b"zz" * 32 + b"\n", b"AB" * 32 + b"\n", b"ab" * 33 + b"\n", b"ab" * 32 + b"\n\n\n"],
    )
    def test_a_malformed_key_is_refused_and_kept(self, tmp_path: Path, content: bytes) -> None:
        """A truncated or corrupt key stops the agent with what was expected; it is never replaced by a new identity."""
        path = tmp_path / KEY_FILE
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(NodeKeyError, match=r"expected 64 lowercase hex digits"):
            load_or_create_node_key(tmp_path)
        assert path.read_bytes() == content

    def test_a_key_without_its_newline_is_accepted(self, tmp_path: Path) -> None:
        """An operator restoring the key with ``printf`` (no newline) still gets the node's identity back."""
        path = tmp_path / KEY_FILE
        path.write_bytes(b"0f" * 32)
        path.chmod(0o600)
        assert load_or_create_node_key(tmp_path) == bytes.fromhex("0f" * 32)


class TestLockStateDir:
    def test_a_second_agent_on_the_same_state_dir_is_refused(self, tmp_path: Path) -> None:
        """Two agents sharing one key would take the node from each other forever; the second one stops."""
        fd = lock_state_dir(tmp_path)
        try:
            with pytest.raises(NodeKeyError, match=r"expected no other agent using it"):
                lock_state_dir(tmp_path)
        finally:
            os.close(fd)
        os.close(lock_state_dir(tmp_path))  # free again once the first agent exits


class TestNodeCredential:
    KEY = bytes(range(32))

    def test_the_credential_is_stable_hex(self) -> None:
        """One key, node id and collector give one 64-hex-digit credential, every start."""
        credential = node_credential(self.KEY, "web-01", "collector.example")
        assert credential == node_credential(self.KEY, "web-01", "collector.example")
        assert len(credential) == 64
        assert set(credential) <= set("0123456789abcdef")

    def test_a_credential_is_good_for_one_collector_and_one_node_id(self) -> None:
        """A collector that learns a credential cannot present it to another collector, or for another node id."""
        base = node_credential(self.KEY, "web-01", "collector.example")
        assert node_credential(self.KEY, "web-01", "other.example") != base
        assert node_credential(self.KEY, "web-02", "collector.example") != base
        assert node_credential(bytes(32), "web-01", "collector.example") != base

    def test_the_host_name_is_case_insensitive(self) -> None:
        """DNS names are case-insensitive, so ``Collector.Example`` is the same collector."""
        assert node_credential(self.KEY, "n", "Collector.EXAMPLE") == node_credential(
            self.KEY, "n", "collector.example"
        )

    def test_the_fields_cannot_be_shifted_into_each_other(self) -> None:
        """Host ``a`` with node ``b.c`` differs from host ``a.b`` with node ``c``: a NUL separates them."""
        assert node_credential(self.KEY, "bc", "a") != node_credential(self.KEY, "c", "ab")

    def test_a_key_of_the_wrong_length_is_a_bug(self) -> None:
        """Passing anything but the 32-byte key is misuse of our own API."""
        with pytest.raises(RuntimeError, match="32-byte"):
            node_credential(b"short", "n", "h")

    def test_the_fingerprint_reads_like_ssh_keygen(self) -> None:
        """The agent prints its fingerprint as ``SHA256:`` and 43 base64 characters, as the collector logs it."""
        printed = fingerprint(node_credential(self.KEY, "web-01", "collector.example"))
        assert printed.startswith("SHA256:")
        assert len(printed) == len("SHA256:") + 43
