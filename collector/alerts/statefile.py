"""Alert state and alert events on disk, in the collector's data dir: ``alerts.json`` and ``alert_events.jsonl``.

``alerts.json`` holds one document (``AlertService.to_state()`` plus the boot times the
reboot check compares), replaced atomically: written to a temporary file, fsynced,
renamed over the old one, and the directory fsynced (POSIX rename is atomic; without the
fsyncs a power cut can leave an empty file, see ext4's ``auto_da_alloc`` notes). A crash
therefore leaves the previous document or the new one, never half of one.
``alert_events.jsonl`` is the alert history: one transition per line, appended and
fsynced per batch. A torn last line (a crash mid-append) is skipped when read.

Every method blocks: the collector calls them in a thread (``asyncio.to_thread``), or at
start and at shutdown. A lock serialises them, so a final save at shutdown cannot
interleave with one still running in a thread.

Not here: what the documents mean (``collector.alerts.service``), when to save
(``collector.alerting``). With no data dir the collector keeps alerts in memory and
never builds one of these.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("nodewatch.collector")

STATE_NAME = "alerts.json"
EVENTS_NAME = "alert_events.jsonl"
# Events kept for /api/v1/alerts/history. Alerts are rare (a mass outage is one transition per node),
# so 10,000 is days of a busy fleet; at ~250 bytes a line the file stays a few MB.
MAX_EVENTS = 10_000


class AlertStateFile:
    """The two alert files of one data dir."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state_path = directory / STATE_NAME
        self.events_path = directory / EVENTS_NAME
        self._lock = threading.Lock()

    def load_state(self) -> dict[str, Any] | None:
        """The last saved document, None if there is none; ValueError for a file that is not JSON."""
        with self._lock:
            try:
                text = self.state_path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
        document = json.loads(text)
        return document if isinstance(document, dict) else {"format": None}  # the caller logs the mismatch

    def save_state(self, document: Mapping[str, Any]) -> None:
        """Replace the document atomically (tmp + fsync + rename + fsync of the directory)."""
        data = json.dumps(document, separators=(",", ":")).encode()
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".json.tmp")
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.state_path)
            _fsync_dir(self.directory)

    def append_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Append transitions (``AlertTransition.to_dict()`` rows), one JSON line each, and fsync."""
        lines = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events)
        if not lines:
            return
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self.events_path.open("a", encoding="utf-8") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())

    def load_events(self, since_at: float = 0.0) -> list[dict[str, Any]]:
        """The newest ``MAX_EVENTS`` events changed at or after ``since_at``, oldest first.

        A file holding more than twice what is kept (old or surplus events) is compacted.
        """
        with self._lock:
            try:
                text = self.events_path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return []
            lines = text.splitlines()
            events: list[dict[str, Any]] = []
            for line in lines[-MAX_EVENTS:]:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a torn line from a crash mid-append
                changed_at = event.get("changed_at") if isinstance(event, dict) else None
                if isinstance(changed_at, int | float) and changed_at >= since_at:
                    events.append(event)
            if len(lines) > 2 * max(len(events), MAX_EVENTS // 2):
                tmp = self.events_path.with_suffix(".jsonl.tmp")
                tmp.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events), encoding="utf-8")
                tmp.replace(self.events_path)
        return events


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX: the entry lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
