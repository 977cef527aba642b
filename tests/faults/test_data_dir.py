"""Fault: a data dir the collector cannot use must stop it at start, saying which file and what to do (issue 12).

A real ``nodewatch collector`` subprocess each time, given ``--data-dir``: a path it
cannot create, a store another collector holds, a store whose files are garbage.
Each refuses to start, names the path, and leaves the files as they were. Not here: the disk filling up mid-run (the
store's own tests inject that writer fault), or the store's format.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import aiohttp

from tests.support.processes import ProcessGroup, health

GARBAGE = b"this is not a nodewatch store\n" * 64
EXIT_BAD_SETTING = 2  # issue 12: a data dir that cannot be written exits 2, like any bad CLI setting


class TestDataDirRefused:
    """The collector refuses a data dir it cannot use, and says why."""

    def test_data_dir_that_cannot_be_created_exits_2_naming_it(self, procs: ProcessGroup, tmp_path: Path) -> None:
        """--data-dir under a regular file cannot be created, even by root: exit 2 with the path in the message."""
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        data_dir = blocker / "store"
        status, output = procs.collector_refusal("--data-dir", str(data_dir))
        assert status == EXIT_BAD_SETTING, output
        assert str(data_dir) in output

    async def test_second_collector_on_one_data_dir_refuses_and_the_first_goes_on(
        self, procs: ProcessGroup, tmp_path: Path
    ) -> None:
        """A second collector on a data dir in use refuses to start; the first keeps serving."""
        data_dir = tmp_path / "shared-store"
        first = await asyncio.to_thread(procs.collector, "--data-dir", str(data_dir))
        status, output = await asyncio.to_thread(procs.collector_refusal, "--data-dir", str(data_dir))
        assert status == EXIT_BAD_SETTING, output
        assert str(data_dir) in output
        assert first.proc.alive()
        async with aiohttp.ClientSession() as session:
            assert (await health(session, first.url))["status"] in {"ok", "degraded"}

    async def test_garbage_store_files_refuse_start_and_are_kept(self, procs: ProcessGroup, tmp_path: Path) -> None:
        """Store files overwritten with garbage: the collector refuses, names one of them, and deletes nothing."""
        data_dir = tmp_path / "store"
        first = await asyncio.to_thread(procs.collector, "--data-dir", str(data_dir))
        assert first.proc.terminate() == 0, first.proc.log_text()[-2000:]
        files = sorted(path for path in data_dir.rglob("*") if path.is_file())
        assert files, f"a collector with --data-dir {data_dir} stored nothing there"
        for path in files:
            path.write_bytes(GARBAGE)
        status, output = await asyncio.to_thread(procs.collector_refusal, "--data-dir", str(data_dir))
        assert status == EXIT_BAD_SETTING, output
        assert any(str(path) in output for path in files), output
        assert all(path.read_bytes() == GARBAGE for path in files), "the collector changed the files it refused"

    def test_another_applications_database_is_refused_and_left_alone(self, procs: ProcessGroup, tmp_path: Path) -> None:
        """A valid SQLite file of some other program where the store would be: exit 2, named, not touched."""
        data_dir = tmp_path / "theirs"
        data_dir.mkdir()
        db = data_dir / "nodewatch.db"
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
            conn.commit()
        before = db.read_bytes()
        status, output = procs.collector_refusal("--data-dir", str(data_dir))
        assert status == EXIT_BAD_SETTING, output
        assert str(db) in output
        assert "not a nodewatch store" in output
        assert db.read_bytes() == before
