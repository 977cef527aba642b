"""A private CA and a server certificate for 127.0.0.1, made with the ``openssl`` CLI, for the wss:// tests and bench.

``make_ca(directory)`` writes ``ca.pem`` (what an agent trusts through
``SSL_CERT_FILE``), ``server.pem`` and ``server.key`` (signed by that CA, with
``subjectAltName = IP:127.0.0.1, DNS:localhost``), and a second, unrelated
self-signed ``other.pem``/``other.key`` that nothing trusts. Not here: any TLS
setting of the agent (``agent.transport``) or of the collector.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"  # the files live as long as a test run


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    untrusted_cert: Path
    untrusted_key: Path


def have_openssl() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path) -> Certs:
    """Write a CA, a server certificate it signed, and an untrusted self-signed one, into ``directory``."""
    key_args = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *key_args, "-days", DAYS, "-subj", "/CN=nodewatch test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)  # fmt: skip
    _openssl("req", "-new", *key_args, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr",
             cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", DAYS, "-extfile", "san.ext", "-out", "server.pem", cwd=directory)  # fmt: skip
    _openssl("req", "-x509", *key_args, "-days", DAYS, "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName = IP:127.0.0.1", "-keyout", "other.key", "-out", "other.pem",
             cwd=directory)  # fmt: skip
    return Certs(
        directory / "ca.pem", directory / "server.pem", directory / "server.key",
        directory / "other.pem", directory / "other.key",
    )  # fmt: skip
