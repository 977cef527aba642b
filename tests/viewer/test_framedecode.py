"""Collector frames decoded in slices: the same messages, and the same refusals, as the codec's decode."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from pytestqt.qtbot import QtBot

from shared.codec import COLLECTOR_LIMITS, decode, encode, to_wire_dict
from shared.errors import ProtocolError
from tests.support.messages import entry, update
from tests.viewer.helpers import make_link
from tests.viewer.subscribe_server import SubscribeServer
from viewer.batching import NodeBatch
from viewer.framedecode import SLICE_ENTRIES, STREAM_BYTES, decode_frame
from viewer.link import LinkState, Phase

# Three slices and a bit: a bad entry can sit in the first, a middle or the last, short one.
ENTRIES = 3 * SLICE_ENTRIES + 5
Wire = dict[str, Any]


def big_update_map() -> Wire:
    """The wire map of an update carrying ``ENTRIES`` valid node entries (n-0, n-1, ...)."""
    return to_wire_dict(update(*(entry(f"n-{index}", seq=index + 1, full=False) for index in range(ENTRIES))))


def spoil_entry(index: int, spoil: Callable[[Wire], None]) -> Callable[[Wire], None]:
    """A change to the update map that breaks entry ``index`` with ``spoil``."""
    return lambda wire: spoil(wire["nodes"][index])


def set_key(key: str, value: object) -> Callable[[Wire], None]:
    """A change that sets ``key`` of a map to ``value``."""
    return lambda wire: wire.__setitem__(key, value)


def set_cpu(value: object) -> Callable[[Wire], None]:
    """A change that sets an entry's last_sample.cpu_percent to ``value``."""
    return lambda wire: wire["last_sample"].__setitem__("cpu_percent", value)


BAD_UPDATES: list[tuple[str, Callable[[Wire], None]]] = [
    ("first entry: a CPU over 100 %", spoil_entry(0, set_cpu(250.0))),
    ("a middle slice: an unknown key", spoil_entry(SLICE_ENTRIES + 7, set_key("surprise", 1))),
    ("the last entry: a bad node id", spoil_entry(ENTRIES - 1, lambda node: node["status"].update(node_id="a b"))),
    ("an entry that is not a map", spoil_entry(2 * SLICE_ENTRIES, lambda node: node.clear())),
    ("entries list too deep", spoil_entry(5, set_key("facts", [[[[[[[[[[1]]]]]]]]]]))),
    ("the envelope: a negative server time", set_key("server_time_at", -1.0)),
    ("the envelope: removed is not a list", set_key("removed", "n-1")),
    ("the envelope: an unknown key", set_key("extra", True)),
]


def packed(wire: Wire) -> bytes:
    """``wire`` packed as the collector packs it."""
    data: bytes = msgpack.packb(wire, use_bin_type=True)
    return data


# Broken bytes of a big frame (one the decoder reads key by key and entry by entry).
BAD_BYTES: list[tuple[str, Callable[[Wire], bytes]]] = [
    ("trailing bytes", lambda wire: packed(wire) + b"\x00"),
    ("cut short", lambda wire: packed(wire)[:-7]),
    ("a bin key in the top map", lambda wire: packed({**wire, b"extra": 1})),  # type: ignore[dict-item]
    ("nodes is a map", lambda wire: packed({**wire, "nodes": {str(i): n for i, n in enumerate(wire["nodes"])}})),
    ("an ext type in an entry", lambda wire: packed(spoiled(wire, 3, "facts", msgpack.ExtType(1, b"x")))),
    ("a string over the limit", lambda wire: packed(spoiled(wire, 300, "facts", "x" * (64 * 1024 + 1)))),
    ("a bin key in an entry", lambda wire: packed(spoiled(wire, 7, b"k", 1))),  # type: ignore[arg-type]
    ("not a map at all", lambda wire: packed(wire["nodes"])),
]


def refusal(decoder: Callable[[bytes], object], data: bytes) -> tuple[object, str, int]:
    """The (reason, detail, close code) of the ``ProtocolError`` ``decoder`` refuses ``data`` with."""
    with pytest.raises(ProtocolError) as refused:
        decoder(data)
    return refused.value.reason, refused.value.detail, refused.value.close_code


def spoiled(wire: Wire, index: int, key: str, value: object) -> Wire:
    """``wire`` with entry ``index``'s ``key`` set to ``value``."""
    wire["nodes"][index][key] = value
    return wire


class TestDecodeFrame:
    def test_a_big_update_decodes_to_the_same_message(self) -> None:
        """An update of several slices' entries is exactly what the codec's decode gives, in order."""
        data = msgpack.packb(big_update_map())
        decoded = decode_frame(data)
        assert decoded == decode(data, COLLECTOR_LIMITS)
        assert [node.status.node_id for node in getattr(decoded, "nodes", [])][:3] == ["n-0", "n-1", "n-2"]

    @pytest.mark.parametrize(("case", "spoil"), BAD_UPDATES, ids=[case for case, _ in BAD_UPDATES])
    def test_a_bad_part_among_many_is_refused_as_before(self, case: str, spoil: Callable[[Wire], None]) -> None:
        """One bad entry (or envelope field) in a big update refuses the frame with the codec's own reason and words."""
        wire = big_update_map()
        spoil(wire)
        data = msgpack.packb(wire)
        assert refusal(decode_frame, data) == refusal(lambda frame: decode(frame, COLLECTOR_LIMITS), data), case

    @pytest.mark.parametrize(("case", "spoil"), BAD_BYTES, ids=[case for case, _ in BAD_BYTES])
    def test_broken_bytes_of_a_big_frame_are_refused_as_before(self, case: str, spoil: Callable[[Wire], bytes]) -> None:
        """A big frame with broken msgpack is refused with the codec's own reason and words, not half-read."""
        data = spoil(big_update_map())
        assert len(data) > STREAM_BYTES
        assert refusal(decode_frame, data) == refusal(lambda frame: decode(frame, COLLECTOR_LIMITS), data), case

    def test_a_big_snapshot_decodes_to_the_same_message(self) -> None:
        """A snapshot of several slices' entries (read entry by entry) is exactly what the codec gives."""
        wire = big_update_map()
        wire.pop("removed", None)
        data = packed({**wire, "type": "snapshot"})
        assert len(data) > STREAM_BYTES
        assert decode_frame(data) == decode(data, COLLECTOR_LIMITS)

    def test_small_and_other_frames_decode_as_before(self) -> None:
        """A small update and a bad non-update frame go through the codec unchanged."""
        small = encode(update(entry("a", full=False)))
        assert decode_frame(small) == decode(small, COLLECTOR_LIMITS)
        with pytest.raises(ProtocolError) as got:
            decode_frame(b"\xc1")
        assert got.value.reason.value == "malformed_msgpack"


class TestLinkRefusesBadEntries:
    def test_one_bad_entry_among_hundreds_closes_and_applies_nothing(
        self, qtbot: QtBot, caplog: pytest.LogCaptureFixture, server: SubscribeServer
    ) -> None:
        """A viewer sent hundreds of good entries and one bad one shows none of them, closes 1008 and reconnects."""
        link = make_link(server.url)
        batches: list[NodeBatch] = []
        phases: list[Phase] = []
        link.batch_ready.connect(batches.append)
        link.state_changed.connect(lambda state: phases.append(state.phase) if isinstance(state, LinkState) else None)
        link.start()
        try:
            qtbot.waitUntil(lambda: Phase.CONNECTED in phases, timeout=5000)
            before = len(batches)
            wire = big_update_map()
            set_cpu(250.0)(wire["nodes"][SLICE_ENTRIES + 1])
            with caplog.at_level(logging.WARNING, logger="viewer.link"):
                server.push_raw(msgpack.packb(wire))
                qtbot.waitUntil(lambda: phases.count(Phase.CONNECTED) == 2, timeout=5000)
        finally:
            assert link.stop()
        assert server.client_close_codes[0] == 1008
        assert [record for record in caplog.records if "schema" in record.getMessage()]
        assert [batch.is_snapshot for batch in batches[before:]] == [True]  # only the fresh snapshot
        assert not any("n-1" in batch.entries for batch in batches)
