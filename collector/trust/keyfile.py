"""Key records as bytes and back, for whoever persists them (the store, or a file in the data dir).

``dump_records`` writes a versioned JSON document; ``load_records`` reads one
back and refuses anything malformed with ``KeyFileError`` naming what is
wrong, never silently dropping a record: a lost record is a node id trusted on
first use again, which is the risk this table exists to close.

Pure: bytes in, values out; no file, no clock. Not here: where the bytes live,
when they are written (after each ``Accept.record``, ``rotate``, ``pin`` and
``forget``, debounced by the caller), or the TOFU rules (``collector.trust.identity``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from collector.trust.identity import FINGERPRINT_PATTERN, KeyRecord

FORMAT = "nodewatch-node-keys"
VERSION = 1


class KeyFileError(ValueError):
    """The key records cannot be read back; the message says which record and what is wrong."""


def dump_records(records: Iterable[KeyRecord]) -> bytes:
    """Every record as one JSON document, sorted by node id."""
    rows = [
        {
            "node_id": r.node_id,
            "fingerprint": r.fingerprint,
            "first_seen_at": r.first_seen_at,
            "last_seen_at": r.last_seen_at,
            "rotate_until_at": r.rotate_until_at,
            "mismatches": r.mismatches,
        }
        for r in sorted(records, key=lambda r: r.node_id)
    ]
    return json.dumps({"format": FORMAT, "version": VERSION, "keys": rows}, indent=1).encode()


def _number(row: dict[str, Any], name: str, where: str) -> float:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KeyFileError(f"{where}: expected {name} to be a finite number, got {value!r:.40}")
    return float(value)


def _record(row: object, index: int) -> KeyRecord:
    where = f"key record {index}"
    if not isinstance(row, dict):
        raise KeyFileError(f"{where}: expected an object, got {type(row).__name__}")
    node_id, fp = row.get("node_id"), row.get("fingerprint")
    if not isinstance(node_id, str) or not node_id:
        raise KeyFileError(f"{where}: expected a node_id string, got {node_id!r:.40}")
    if not isinstance(fp, str) or FINGERPRINT_PATTERN.fullmatch(fp) is None:
        raise KeyFileError(f"{where} ({node_id!r}): expected a SHA256: fingerprint, got {fp!r:.60}")
    rotate = row.get("rotate_until_at")
    mismatches = row.get("mismatches", 0)
    if isinstance(mismatches, bool) or not isinstance(mismatches, int) or mismatches < 0:
        raise KeyFileError(f"{where} ({node_id!r}): expected mismatches >= 0, got {mismatches!r:.40}")
    return KeyRecord(
        node_id=node_id,
        fingerprint=fp,
        first_seen_at=_number(row, "first_seen_at", where),
        last_seen_at=_number(row, "last_seen_at", where),
        rotate_until_at=None if rotate is None else _number(row, "rotate_until_at", where),
        mismatches=mismatches,
    )


def load_records(data: bytes) -> list[KeyRecord]:
    """The records ``dump_records`` wrote; ``KeyFileError`` for anything else (a duplicate node id too)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise KeyFileError(f"expected a JSON document of node keys, got {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise KeyFileError(f"expected format {FORMAT!r} version {VERSION}, got {str(doc)[:80]!r}")
    rows = doc.get("keys")
    if not isinstance(rows, list):
        raise KeyFileError(f"expected a 'keys' list, got {type(rows).__name__}")
    records = [_record(row, i) for i, row in enumerate(rows)]
    seen: set[str] = set()
    for record in records:
        if record.node_id in seen:
            raise KeyFileError(f"expected one record per node id, got {record.node_id!r} twice")
        seen.add(record.node_id)
    return records
