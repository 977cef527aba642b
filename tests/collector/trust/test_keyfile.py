"""Key records survive a round trip through bytes, and a damaged document is refused loudly, never half-read."""

from __future__ import annotations

import json

import pytest

from collector.trust.identity import IdentityTable, KeyRecord
from collector.trust.keyfile import KeyFileError, dump_records, load_records

FP = "SHA256:" + "A" * 43
WALL_T0 = 1_795_000_000.0


class TestKeyFile:
    def test_a_table_reloaded_from_its_dump_is_the_same_table(self) -> None:
        """What the collector knew before a restart, it knows after: every field of every record comes back."""
        records = [
            KeyRecord("web-01", FP, WALL_T0, WALL_T0 + 5),
            KeyRecord("web-02", "SHA256:" + "b" * 43, WALL_T0, WALL_T0, rotate_until_at=WALL_T0 + 86_400, mismatches=3),
        ]
        table = IdentityTable()
        table.load(load_records(dump_records(records)))
        assert table.records() == records

    @pytest.mark.parametrize(
        ("doc", "says"),
        [
            (b"{", "JSON"),
            (b"\xff", "JSON"),
            (json.dumps({"format": "other", "version": 1, "keys": []}).encode(), "format"),
            (json.dumps({"format": "nodewatch-node-keys", "version": 1, "keys": {}}).encode(), "'keys' list"),
            (json.dumps({"format": "nodewatch-node-keys", "version": 1, "keys": [1]}).encode(), "an object"),
        ],
    )
    def test_a_damaged_document_is_refused(self, doc: bytes, says: str) -> None:
        """A truncated, foreign or malformed document raises KeyFileError saying what is wrong."""
        with pytest.raises(KeyFileError, match=says):
            load_records(doc)

    @pytest.mark.parametrize(
        ("change", "says"),
        [
            ({"fingerprint": "MD5:x"}, "fingerprint"),
            ({"node_id": ""}, "node_id"),
            ({"first_seen_at": "yesterday"}, "first_seen_at"),
            ({"last_seen_at": float("inf")}, "last_seen_at"),
            ({"mismatches": -1}, "mismatches"),
            ({"rotate_until_at": True}, "rotate_until_at"),
        ],
    )
    def test_a_bad_record_is_refused_by_name(self, change: dict[str, object], says: str) -> None:
        """One bad record fails the whole load, naming the field: a skipped record would reopen first use."""
        doc = json.loads(dump_records([KeyRecord("web-01", FP, WALL_T0, WALL_T0)]))
        doc["keys"][0].update(change)
        with pytest.raises(KeyFileError, match=says):
            load_records(json.dumps(doc).encode())

    def test_a_node_id_twice_is_refused(self) -> None:
        """Two records for one node id cannot both be true: refused rather than one picked."""
        record = KeyRecord("web-01", FP, WALL_T0, WALL_T0)
        doc = json.loads(dump_records([record]))
        doc["keys"].append(doc["keys"][0])
        with pytest.raises(KeyFileError, match="twice"):
            load_records(json.dumps(doc).encode())
