"""The agent's own HMAC-SHA256 (no OpenSSL, to keep libcrypto out of its RSS) equals the standard one."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.identity import _hmac_sha256, fingerprint, node_credential
from collector.trust.identity import fingerprint as collector_fingerprint

# RFC 4231, test cases 1, 2 and 6 (a key longer than the block is hashed first).
RFC_4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
]


@pytest.mark.parametrize(("key", "message", "expected"), RFC_4231)
def test_rfc_4231_vectors(key: bytes, message: bytes, expected: str) -> None:
    """The published HMAC-SHA256 test vectors come out exactly."""
    assert _hmac_sha256(key, message).hex() == expected


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_equal_to_the_hmac_module(key: bytes, message: bytes) -> None:
    """For any key and message the agent's HMAC equals ``hmac.new(key, message, sha256)``: collectors see no change."""
    assert _hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).digest()


def test_the_agents_fingerprint_is_the_collectors() -> None:
    """What ``nodewatch admin fingerprint`` prints on a node is what the collector records and lists."""
    credential = node_credential(bytes(range(32)), "web-01", "collector.example")
    assert fingerprint(credential) == collector_fingerprint(credential)
