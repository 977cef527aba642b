"""``KeyStore``: the node key table saved to ``node_keys.json`` only when it changed, atomically, and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.store.keystore import KEYS_NAME, KeyStore
from collector.store.model import StoreCorruptError
from collector.trust.identity import IdentityTable, fingerprint

CREDENTIAL = "ab" * 32
WALL = 1_700_000_000.0


class TestKeyStore:
    """Saving and reading the key table of one data dir."""

    async def test_a_first_use_is_saved_and_read_back_by_the_next_collector(self, tmp_path: Path) -> None:
        """A key recorded by one collector is the key the next one on the same data dir holds."""
        store, table = KeyStore(tmp_path), IdentityTable()
        store.track(table)
        table.check("node-a", CREDENTIAL, peer="p", now=0.0, wall=WALL)
        await store.save()
        again, restored = KeyStore(tmp_path), IdentityTable()
        again.read()
        again.track(restored)
        record = restored.get("node-a")
        assert record is not None
        assert record.fingerprint == fingerprint(CREDENTIAL)

    async def test_an_unchanged_table_is_not_written_again(self, tmp_path: Path) -> None:
        """With no key change since the last save, the file is left alone (no write per tick)."""
        store, table = KeyStore(tmp_path), IdentityTable()
        store.track(table)
        await store.save()
        assert not (tmp_path / KEYS_NAME).exists()
        table.pin("node-a", fingerprint(CREDENTIAL), WALL)
        await store.save()
        (tmp_path / KEYS_NAME).write_bytes(b"sentinel")
        await store.save()
        assert (tmp_path / KEYS_NAME).read_bytes() == b"sentinel"

    async def test_a_failed_write_is_retried_at_the_next_save(self, tmp_path: Path) -> None:
        """A save into a missing directory fails quietly; once the directory is back, the next save writes."""
        data_dir = tmp_path / "gone"
        store, table = KeyStore(data_dir), IdentityTable()
        store.track(table)
        table.pin("node-a", fingerprint(CREDENTIAL), WALL)
        await store.save()
        data_dir.mkdir()
        await store.save()
        assert (data_dir / KEYS_NAME).exists()

    def test_a_damaged_file_is_refused_naming_it(self, tmp_path: Path) -> None:
        """Garbage in node_keys.json raises the store's open error with the file's path, never an empty table."""
        (tmp_path / KEYS_NAME).write_bytes(b"\xff not json")
        with pytest.raises(StoreCorruptError, match=KEYS_NAME):
            KeyStore(tmp_path).read()
