"""The proposed close codes: no clash with the codes nodewatch already sends, each reason one code."""

from __future__ import annotations

import re
from pathlib import Path

from collector.trust.refusal import (
    CAPACITY_REACHED_CODE,
    CLOSE_CODE_FOR_TRUST_REASON,
    POLICY_VIOLATION_CODE,
    Refusal,
    TrustCloseCode,
    TrustReason,
)
from shared.errors import CLOSE_CODE_FOR_REASON, CloseCode, ErrorReason

SECURITY_DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"


class TestRefusal:
    def test_new_codes_do_not_reuse_a_code_with_another_meaning(self) -> None:
        """A client's retry table keys on the code: 4403 and 4430 must be free in shared.errors."""
        assert {int(c) for c in TrustCloseCode}.isdisjoint({int(c) for c in CloseCode})
        assert all(4000 <= int(c) <= 4999 for c in TrustCloseCode)

    def test_reasons_shared_with_shared_errors_keep_their_code(self) -> None:
        """``capacity_reached`` means 4503 here as in shared.errors, and 1008 is its policy violation."""
        assert CLOSE_CODE_FOR_REASON[ErrorReason.CAPACITY_REACHED] == CAPACITY_REACHED_CODE
        assert int(CloseCode.POLICY_VIOLATION) == POLICY_VIOLATION_CODE
        new_reasons = {r.value for r in TrustReason} - {r.value for r in ErrorReason}
        assert new_reasons == {
            "node_key_mismatch",
            "node_key_required",
            "rate_exceeded",
            "new_node_rate_exceeded",
            "seq_out_of_range",
        }

    def test_every_reason_has_a_code_and_fits_an_error_frame(self) -> None:
        """Each reason maps to one close code and fits Error.reason's 64 characters."""
        assert set(CLOSE_CODE_FOR_TRUST_REASON) == set(TrustReason)
        assert all(len(r.value) <= 64 for r in TrustReason)

    def test_a_refusal_carries_its_close_code(self) -> None:
        """The shell closes with the code the refusal's reason calls for."""
        assert Refusal(TrustReason.NODE_KEY_MISMATCH, "x").code == 4403
        assert Refusal(TrustReason.RATE_EXCEEDED, "x").code == 4430
        assert Refusal(TrustReason.SEQ_OUT_OF_RANGE, "x").code == 1008

    def test_the_security_doc_lists_every_new_reason_with_its_code(self) -> None:
        """docs/security.md section 4 is the table operators read: it matches the code, row for row."""
        text = SECURITY_DOC.read_text(encoding="utf-8")
        section = text.split("## 4. Proposed wire changes", 1)[1].split("\n## ", 1)[0]
        rows = {reason: int(code) for code, reason in re.findall(r"^\| (\d{4}) \| `([a-z_]+)` \|", section, re.M)}
        expected = {r.value: code for r, code in CLOSE_CODE_FOR_TRUST_REASON.items()}
        del expected[TrustReason.CAPACITY_REACHED.value]  # an existing reason, documented in docs/protocol.md
        assert rows == expected
