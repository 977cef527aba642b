"""The pre-packed fan-out frames (collector.wire) decode to exactly what the pydantic path encodes."""

from __future__ import annotations

import msgpack

from collector import wire
from collector.cache import Change, ChangeKind, NodeCache
from collector.fanout import PendingUpdates
from shared.codec import COLLECTOR_LIMITS, decode, encode, to_wire_dict
from tests.support.messages import WALL_T0, heartbeat, hello

T0 = 1000.0  # monotonic


def busy_cache() -> NodeCache:
    """Three nodes in different shapes: fresh, with samples and skew, and stale after a clean close."""
    cache = NodeCache()
    cache.hello(hello("fresh"), conn=1, now=T0, wall=WALL_T0)
    cache.hello(hello("busy", dropped=3), conn=2, now=T0, wall=WALL_T0)
    for seq in (1, 2, 4):  # a gap: missing_samples = 1
        hb = heartbeat(seq, disks={"/": [10, 5]}, cpu_per_core_percent=[1.0, 2.5])
        cache.heartbeat("busy", 2, hb, T0 + seq, WALL_T0 + seq, frame=encode(hb))
    cache.hello(hello("gone"), conn=3, now=T0, wall=WALL_T0)
    cache.heartbeat("gone", 3, heartbeat(1, cpu=0.0), T0 + 1, WALL_T0 + 1)  # no frame: packed on demand
    cache.close("gone", 3, clean=True, now=T0 + 2, wall=WALL_T0 + 2)
    return cache


class TestStatusWire:
    def test_matches_the_model_dump_for_every_node(self) -> None:
        """status_wire() is the same map, in the same key order, as NodeStatus.model_dump(exclude_none=True)."""
        cache = busy_cache()
        for record in cache.nodes():
            model_map = wire.status(record).model_dump(mode="python", exclude_none=True)
            assert wire.status_wire(record) == model_map
            assert list(wire.status_wire(record)) == list(model_map)


class TestFrames:
    def test_update_frame_equals_encoded_update(self) -> None:
        """An update built from parts decodes and unpacks to the same message the model path encodes."""
        cache = busy_cache()
        changes = [
            Change("fresh", ChangeKind.STATUS | ChangeKind.FACTS),
            Change("busy", ChangeKind.STATUS | ChangeKind.SAMPLE),
            Change("gone", ChangeKind.STATUS | ChangeKind.SAMPLE | ChangeKind.FACTS),
            Change("forgotten", ChangeKind.REMOVED),
        ]
        by_model, by_parts = PendingUpdates(), PendingUpdates()
        by_model.add(changes)
        by_parts.add(changes)
        update = by_model.take_update(cache, WALL_T0 + 9)
        frame = by_parts.take_frame(cache, WALL_T0 + 9)
        assert update is not None
        assert frame is not None
        assert msgpack.unpackb(frame) == msgpack.unpackb(encode(update))
        assert decode(frame, COLLECTOR_LIMITS) == update
        assert by_parts.take_frame(cache, WALL_T0 + 10) is None

    def test_snapshot_frame_equals_encoded_snapshot(self) -> None:
        """The snapshot built from parts, history included, is the model path's snapshot byte for byte."""
        cache = busy_cache()
        assert wire.snapshot_frame(cache, WALL_T0 + 9, 2) == encode(wire.snapshot(cache, WALL_T0 + 9, 2))

    def test_forwarded_sample_frame_is_the_agents_bytes(self) -> None:
        """The last sample is forwarded as the validated frame the agent sent, not re-encoded."""
        cache = busy_cache()
        record = cache.get("busy")
        assert record is not None
        assert record.last_sample is not None
        assert record.last_sample_frame == encode(record.last_sample)
        entry = msgpack.unpackb(wire.entry_frame(record, ChangeKind.SAMPLE))
        assert entry["last_sample"] == to_wire_dict(record.last_sample)

    def test_changed_facts_are_packed_again(self) -> None:
        """A hello with new facts replaces the cached packed facts."""
        cache = busy_cache()
        record = cache.get("busy")
        assert record is not None
        wire.entry_frame(record, ChangeKind.FACTS)
        cache.hello(hello("busy", hostname="renamed"), conn=4, now=T0 + 5, wall=WALL_T0 + 5)
        entry = msgpack.unpackb(wire.entry_frame(record, ChangeKind.FACTS))
        assert entry["facts"]["hostname"] == "renamed"
