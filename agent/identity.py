"""The agent's node key: 32 random bytes in its state dir, and the credential its hello carries.

The key file (``node.key``, 64 hex digits and a newline) is created once,
atomically and with mode 0600, and never rewritten: a new key is a new
identity, which the collector refuses for a node id it knows (4403
``node_key_mismatch``) until an operator rotates or forgets it. So a key file
that is unreadable, malformed, a symlink, not ours, or readable by group or
others is refused with ``NodeKeyError``, never replaced.

The hello does not carry the key itself: it carries ``node_credential``, an
HMAC of the node id and the collector's host name under the key. A collector
(or an impostor the agent was pointed at by mistake) learns a credential that
is good for that collector's name only. docs/security.md explains the choice.

Stdlib only, and not even ``hashlib``, ``hmac`` or ``secrets``: each imports
``_hashlib``, which maps OpenSSL's libcrypto (+3.7 MB RSS, a fifth of the agent's
20 MB budget; tests/agent/test_tls.py). HMAC-SHA256 (RFC 2104) is a dozen lines
over CPython's built-in SHA-256 (``_sha256``, ``_sha2`` from 3.12), and random
bytes come from ``os.urandom``, which ``secrets.token_bytes`` calls anyway.
Not here: where the state dir comes from (``agent.config``) or sending the hello.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import importlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEY_FILE = "node.key"
LOCK_FILE = "agent.lock"
KEY_BYTES = 32  # 256 bits: no brute force, no salt needed (docs/security.md)
_KEY_FILE_BYTES = 2 * KEY_BYTES + 1  # hex digits and a newline
# The same domain strings as collector.trust.identity: both sides must derive and hash alike.
_CREDENTIAL_DOMAIN = b"nodewatch node credential v1\x00"
_FINGERPRINT_DOMAIN = b"nodewatch node credential fingerprint v1\x00"
_HEX_DIGITS = frozenset(b"0123456789abcdef")
# RFC 2104: SHA-256's block is 64 bytes; the inner and outer pads are 0x36 and 0x5c repeated.
_BLOCK_BYTES = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 constructor (no OpenSSL): ``_sha2.sha256`` from 3.12, ``_sha256.sha256`` before."""
    try:
        module = importlib.import_module("_sha2")
    except ImportError:
        module = importlib.import_module("_sha256")
    constructor: Callable[[bytes], Any] = module.sha256
    return constructor


def _sha256(data: bytes) -> bytes:
    digest: bytes = _builtin_sha256()(data).digest()
    return digest


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104), equal to ``hmac.new(key, message, hashlib.sha256).digest()``."""
    if len(key) > _BLOCK_BYTES:
        key = _sha256(key)
    key = key.ljust(_BLOCK_BYTES, b"\0")
    inner = _sha256(key.translate(_IPAD) + message)
    return _sha256(key.translate(_OPAD) + inner)


class NodeKeyError(ValueError):
    """The node key cannot be used; the message names the file, what was expected and what was found."""


def _check_owner_and_mode(path: Path, st: os.stat_result, forbidden: int, what: str) -> None:
    """Refuse a file or dir that is not ours, or grants any of the ``forbidden`` bits (as ssh's StrictModes)."""
    if st.st_uid != os.geteuid():
        raise NodeKeyError(f"{what} {str(path)!r}: expected to be owned by uid {os.geteuid()}, got uid {st.st_uid}")
    if st.st_mode & forbidden:
        wanted = "0700" if stat.S_ISDIR(st.st_mode) else "0600"
        raise NodeKeyError(
            f"{what} {str(path)!r}: expected mode {wanted} (nothing for group or others), "
            f"got {stat.filemode(st.st_mode)}: chmod {wanted[1:]} it"
        )


def _prepare_state_dir(state_dir: Path) -> None:
    """Create the state dir 0700 if missing; refuse one that others may write (they could swap the key)."""
    with contextlib.suppress(FileExistsError):
        state_dir.mkdir(mode=0o700, parents=True)
    st = state_dir.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise NodeKeyError(f"state dir {str(state_dir)!r}: expected a directory, got {stat.filemode(st.st_mode)}")
    _check_owner_and_mode(state_dir, st, 0o022, "state dir")


def _read_key(path: Path) -> bytes:
    """The key in ``path``, opened without following a symlink and checked on the open file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NodeKeyError(f"node key {str(path)!r}: expected a regular file, got {stat.filemode(st.st_mode)}")
        _check_owner_and_mode(path, st, 0o077, "node key")
        data = os.read(fd, _KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    text = data.rstrip(b"\n")
    if len(text) != 2 * KEY_BYTES or not set(text) <= _HEX_DIGITS or len(data) > _KEY_FILE_BYTES:
        raise NodeKeyError(
            f"node key {str(path)!r}: expected {2 * KEY_BYTES} lowercase hex digits and a newline, "
            f"got {len(data)} bytes; it is never replaced by itself: restore it, or delete it and ask the "
            "operator to rotate this node's key on the collector"
        )
    return bytes.fromhex(text.decode("ascii"))


def _create_key(path: Path) -> bytes:
    """Write a new key to a temporary file 0600, fsync it, then link it into place (never over an existing key)."""
    key = os.urandom(KEY_BYTES)  # what secrets.token_bytes returns
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link, not rename: rename would replace a key another process created meanwhile.
        os.link(tmp, path)
    except FileExistsError:
        return _read_key(path)  # another agent start won the race: its key is the node's key
    finally:
        tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)  # the new name survives a power cut
    finally:
        os.close(dir_fd)
    return key


def load_or_create_node_key(state_dir: Path) -> bytes:
    """The node's 32-byte key from ``state_dir/node.key``, created on first start; ``NodeKeyError`` if unusable."""
    path = state_dir / KEY_FILE
    try:
        _prepare_state_dir(state_dir)
        try:
            return _read_key(path)
        except FileNotFoundError:
            return _create_key(path)
    except OSError as exc:  # ELOOP for a symlink, EACCES, EROFS, EIO
        raise NodeKeyError(f"node key {str(path)!r}: expected a usable state dir and key file, got {exc!r}") from exc


def lock_state_dir(state_dir: Path) -> int:
    """Hold ``state_dir/agent.lock`` exclusively for the life of the process; returns the fd to keep open.

    Two agents with one key and one node id would replace each other's connection forever
    (a verified key may take its node over); the second one is refused here instead.
    """
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise NodeKeyError(f"state dir {str(state_dir)!r}: expected no other agent using it, got it locked") from exc
    return fd


def node_credential(key: bytes, node_id: str, collector_host: str) -> str:
    """What ``hello.node_credential`` carries: HMAC-SHA256 over the node id and the collector's host name.

    ``collector_host`` is the host of the ingest URL (``urlsplit(url).hostname``, lowercased), so a
    credential leaked to one collector is useless at another. Renaming the collector changes every
    credential: the operator then rotates the keys (docs/security.md, "Operations").
    """
    if len(key) != KEY_BYTES:
        raise RuntimeError(f"expected a {KEY_BYTES}-byte node key, got {len(key)} bytes")
    message = _CREDENTIAL_DOMAIN + collector_host.lower().encode("utf-8") + b"\x00" + node_id.encode("utf-8")
    return _hmac_sha256(key, message).hex()


def fingerprint(credential: str) -> str:
    """``SHA256:...`` of a credential, equal to what the collector logs (``collector.trust.identity``)."""
    digest = _sha256(_FINGERPRINT_DOMAIN + credential.encode("ascii"))
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
