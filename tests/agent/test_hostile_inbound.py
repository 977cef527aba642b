"""``agent.inbound.InboundBudget``: what a collector may make the agent parse on one connection (issue 13)."""

from __future__ import annotations

import pytest

from agent.inbound import ACK_FRAME_BYTES, MAX_EARNED_FRAMES, InboundBudget, InboundLimits, parse
from agent.wire import MAX_INBOUND_BYTES
from agent.wsclient import BINARY, PING, CloseFrame, Event, FrameReader, Message, Ping, Pong
from shared.codec import encode
from shared.messages import Error

ACK = Message(b"\x82\xa4type\xa3ack\xa3seq\x01", text=False)
LIMITS = InboundLimits()


def spend(budget: InboundBudget, events: list[Event], now: float = 0.0) -> tuple[int, str | None]:
    """How many of ``events`` the budget lets through at ``now``, and why it stopped."""
    kept, over = budget.take_frames(events, now)
    return len(kept), over


class TestFrames:
    def test_an_honest_replay_acked_frame_by_frame_stays_inside(self) -> None:
        """A collector that acks each of 1,000 replayed heartbeats is never cut off."""
        budget = InboundBudget()
        for _ in range(1_000):
            budget.sent(BINARY)
        assert spend(budget, [ACK] * 1_000) == (1_000, None)
        assert budget.take_bytes(1_000 * 17, 0.0) == (1_000 * 17, None)

    @pytest.mark.parametrize(
        ("event", "allowed", "why"),
        [
            (Message(b"spam", text=True), LIMITS.frame_burst, "frames at once"),
            (ACK, LIMITS.frame_burst, "frames at once"),
            (Pong(b""), LIMITS.frame_burst, "frames at once"),
            (Ping(b"x"), LIMITS.ping_burst, "pings at once"),
        ],
        ids=["text", "unearned-ack", "unsolicited-pong", "ping"],
    )
    def test_a_flood_is_cut_at_its_burst(self, event: Event, allowed: int, why: str) -> None:
        """5,000 frames nothing earned: the burst passes, the rest are not handled, and the reason names it."""
        kept, over = spend(InboundBudget(), [event] * 5_000)
        assert kept == allowed
        assert over is not None
        assert why in over

    def test_pings_refill_at_one_a_second(self) -> None:
        """After the burst of 10 pings, one more is answered each second and no faster."""
        budget = InboundBudget()
        assert spend(budget, [Ping(b"")] * 10, 0.0) == (10, None)
        assert spend(budget, [Ping(b"")], 0.5)[0] == 0
        budget = InboundBudget()
        spend(budget, [Ping(b"")] * 10, 0.0)
        assert spend(budget, [Ping(b"")], 1.0) == (1, None)

    def test_a_pong_to_our_own_ping_is_free(self) -> None:
        """Keepalive pongs answer pings we sent: they never draw on the budget."""
        budget = InboundBudget(InboundLimits(frame_burst=0, frames_per_s=0.0))
        budget.sent(PING)
        assert spend(budget, [Pong(b"")]) == (1, None)
        assert spend(budget, [Pong(b"")])[0] == 0

    def test_close_frames_are_always_read(self) -> None:
        """The collector's close is never refused, so a spent budget still ends the connection cleanly."""
        budget = InboundBudget(InboundLimits(frame_burst=0, frames_per_s=0.0))
        assert spend(budget, [CloseFrame(1000, "")]) == (1, None)

    def test_credit_from_a_long_connection_is_capped(self) -> None:
        """A day of heartbeats nobody acked earns at most MAX_EARNED_FRAMES frames of flood."""
        budget = InboundBudget()
        for _ in range(MAX_EARNED_FRAMES * 10):
            budget.sent(BINARY)
        kept, over = spend(budget, [Message(b"x", text=True)] * (MAX_EARNED_FRAMES * 10))
        assert kept == MAX_EARNED_FRAMES + LIMITS.frame_burst
        assert over is not None


class TestBytes:
    def test_a_megabyte_at_once_is_parsed_only_up_to_the_burst(self) -> None:
        """One read of 1 MiB is over the byte burst: only its first ``byte_burst`` bytes are parsed."""
        allowed, over = InboundBudget().take_bytes(1 << 20, 0.0)
        assert allowed == LIMITS.byte_burst
        assert over is not None
        assert "bytes at once" in over

    def test_bytes_refill_at_their_rate(self) -> None:
        """The byte burst, then 16 KiB a second."""
        budget = InboundBudget()
        assert budget.take_bytes(LIMITS.byte_burst, 0.0) == (LIMITS.byte_burst, None)
        assert budget.take_bytes(1, 0.0)[1] is not None
        assert budget.take_bytes(int(LIMITS.bytes_per_s), 1.0) == (int(LIMITS.bytes_per_s), None)

    @pytest.mark.parametrize("read_bytes", [40, 4096, 64 * 1024, 1 << 20])
    def test_a_flood_gets_the_same_answer_however_it_is_split_into_reads(self, read_bytes: int) -> None:
        """5,000 error frames (200 KB): the same frames are handled and refused whether read 40 bytes or 1 MiB at once.

        Before, one read over the byte burst was refused whole, so the agent's own flood rule never saw
        the frames and the reason it gave depended on the kernel's timing (a flaky CI run).
        """
        payload = encode(Error(reason="schema", detail="no"))
        stream = (bytes([0x82, len(payload)]) + payload) * 5_000  # unmasked, FIN
        budget, reader = InboundBudget(), FrameReader(MAX_INBOUND_BYTES)
        kept: list[Event] = []
        refusal = None
        for start in range(0, len(stream), read_bytes):
            events, refusal = parse(reader, budget, stream[start : start + read_bytes], 0.0)
            kept += events
            if refusal is not None:
                break
        assert len(kept) == LIMITS.frame_burst
        assert refusal is not None
        assert "frames at once" in refusal.why

    def test_sent_frames_earn_the_bytes_of_their_acks(self) -> None:
        """With the byte bucket empty, each frame we sent still pays for one ack's bytes."""
        budget = InboundBudget(InboundLimits(byte_burst=0, bytes_per_s=0.0))
        budget.sent(BINARY)
        assert budget.take_bytes(ACK_FRAME_BYTES, 0.0) == (ACK_FRAME_BYTES, None)
        assert budget.take_bytes(ACK_FRAME_BYTES + 1, 0.0)[1] is not None
