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
    def test_a_code_means_one_thing_here_and_in_shared_errors(self) -> None:
        """A client's retry table keys on the code: 4403 and 4430 carry only trust reasons, before and after wiring."""
        trust_values = {r.value for r in TrustReason}
        for code in TrustCloseCode:
            assert 4000 <= int(code) <= 4999
            shared_reasons = {r.value for r, c in CLOSE_CODE_FOR_REASON.items() if int(c) == int(code)}
            assert shared_reasons <= trust_values, f"{int(code)} already means {shared_reasons} in shared.errors"
        for reason, trust_code in CLOSE_CODE_FOR_TRUST_REASON.items():
            if reason.value in {r.value for r in ErrorReason}:
                assert int(CLOSE_CODE_FOR_REASON[ErrorReason(reason.value)]) == trust_code

    def test_existing_codes_are_repeated_faithfully(self) -> None:
        """``capacity_reached`` means 4503 here as in shared.errors, and 1008 is its policy violation."""
        assert CLOSE_CODE_FOR_REASON[ErrorReason.CAPACITY_REACHED] == CAPACITY_REACHED_CODE
        assert int(CloseCode.POLICY_VIOLATION) == POLICY_VIOLATION_CODE
        assert {r.value for r in TrustReason} == {
            "node_key_mismatch",
            "node_key_required",
            "rate_exceeded",
            "new_node_rate_exceeded",
            "seq_out_of_range",
            "capacity_reached",
            "node_id_not_allowed",
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
