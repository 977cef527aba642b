"""The data dir: where it defaults to, and the lock that keeps a second collector out of it.

``default_data_dir`` follows the FHS for root (/var/lib/nodewatch, as systemd's
``StateDirectory=`` would) and the XDG base-directory spec for a user
($XDG_STATE_HOME/nodewatch, else ~/.local/state/nodewatch). It takes the
environment and uid as arguments: only ``main`` reads the real ones (STYLE 7).

The lock is ``fcntl.flock`` on ``collector.lock``: the kernel drops it when the
process dies, even by kill -9, so a stale lock never needs cleaning up.

Not here: SQL (``collector.store.sqlite_engine``).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Mapping
from pathlib import Path

from collector.store.model import StoreLockedError, StoreUnwritableError

LOCK_NAME = "collector.lock"
# The first 16 bytes of every SQLite 3 database file (https://sqlite.org/fileformat.html, 1.3).
SQLITE_HEADER = b"SQLite format 3\x00"
REMEDY_DIR = "make it writable by this user, pass another --data-dir, or run with --ephemeral"
REMEDY_CORRUPT = (
    "move the file aside (keep it for a bug report) to start with an empty store, or restore it from a backup"
)
REMEDY_FOREIGN = "this is not a nodewatch store: pass a --data-dir of its own"
REMEDY_LOCKED = "stop that collector first, or give this one another --data-dir"


def default_data_dir(env: Mapping[str, str], euid: int, home: Path) -> Path:
    """Where the store lives without ``--data-dir``: /var/lib/nodewatch for root, the XDG state dir otherwise."""
    if euid == 0:
        return Path("/var/lib/nodewatch")
    state = env.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative path in the variable is invalid and must be ignored.
    base = Path(state) if state and Path(state).is_absolute() else home / ".local" / "state"
    return base / "nodewatch"


def take_lock(data_dir: Path) -> int:
    """Create ``data_dir`` if needed and lock it; returns the lock's fd (closing it unlocks); see ``stamp_lock``."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnwritableError(data_dir, f"cannot create the data dir ({exc.strerror})", REMEDY_DIR) from exc
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StoreUnwritableError(data_dir, "the data dir is not writable", REMEDY_DIR)
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreUnwritableError(path, f"cannot open the lock file ({exc.strerror})", REMEDY_DIR) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StoreLockedError(path, f"another collector (pid {holder}) uses this data dir", REMEDY_LOCKED) from exc
        raise StoreUnwritableError(path, f"cannot lock ({exc.strerror})", REMEDY_DIR) from exc
    return fd


def stamp_lock(fd: int) -> None:
    """Write our pid into the lock file, for the message a second collector prints.

    Called only once the store has opened: a collector that refuses a data dir leaves every
    file in it as it was.
    """
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
