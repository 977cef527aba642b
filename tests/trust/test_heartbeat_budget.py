"""Issue 13, finding 6: what one heartbeat may cost is bounded, and a heartbeat past a bound is refused, counted.

Against a real collector on loopback. The bounds are ``shared.limits`` (1,024 cores; 64 mounts,
interfaces and sensors; 16 GPUs; 256-character names) and the 64 KiB ingest frame: a heartbeat at
every schema limit at once is 163 KiB, so the frame is the per-heartbeat byte budget, and the
largest legal heartbeat is 64 KiB (docs/security.md, 3.3, measures a node of them). These guard
documented behaviour: they pass on the code before this file as well.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from shared.limits import MAX_CORES, MAX_DISKS, MAX_GPUS, MAX_INTERFACES, MAX_SENSORS, MAX_SHORT_TEXT
from tests.support.collector import MakeClient, connect_agent, expect_rejection
from tests.support.messages import heartbeat, hello

GPU = {"index": 0}
OVER_LIMITS: list[tuple[str, dict[str, Any]]] = [
    ("cores", {"cpu_per_core_percent": [1.0] * (MAX_CORES + 1)}),
    ("mounts", {"disks": {f"/m{i}": [1, 1, 1] for i in range(MAX_DISKS + 1)}}),
    ("interfaces", {"net_interfaces": {f"e{i}": [1.0, 1.0] for i in range(MAX_INTERFACES + 1)}}),
    ("sensors", {"temperatures": {f"t{i}": 40.0 for i in range(MAX_SENSORS + 1)}}),
    ("gpus", {"gpus": [GPU] * (MAX_GPUS + 1)}),
    ("name length", {"disks": {"/" + "x" * MAX_SHORT_TEXT: [1, 1, 1]}}),
]


def raw_heartbeat(**fields: Any) -> bytes:
    """A heartbeat's msgpack bytes with ``fields`` as given, unchecked (a hostile agent packs its own maps)."""
    body = heartbeat(1).model_dump(exclude_none=True)
    body.update(fields)
    return bytes(msgpack.packb(body))


class TestHeartbeatBounds:
    """Each bound of a heartbeat is enforced with the documented close code and counted."""

    @pytest.mark.parametrize(("what", "fields"), OVER_LIMITS, ids=[w for w, _ in OVER_LIMITS])
    async def test_one_past_a_count_or_length_limit_is_1008_schema(
        self, make_client: MakeClient, what: str, fields: dict[str, Any]
    ) -> None:
        """One entry (or character) past a limit of shared.limits: an Error, then close 1008 schema, counted."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(node_id=f"big-{what.replace(' ', '-')}"))
        await ws.send_bytes(raw_heartbeat(**fields))
        error, code, reason = await expect_rejection(ws)
        assert (code, reason) == (1008, "schema")
        assert error is not None
        metrics = await (await client.get("/metrics")).text()
        assert 'nodewatch_collector_protocol_errors_total{endpoint="ingest",reason="schema"} 1.0' in metrics

    async def test_a_legal_shape_over_the_frame_budget_is_1009(self, make_client: MakeClient) -> None:
        """Every map within its count but the frame over 64 KiB: an Error, then 1009 frame_too_large, counted."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello(node_id="wide"))
        names = {f"/{i:02d}" + "x" * 250: [1, 1, 1] for i in range(MAX_DISKS)}
        fields = {
            "disks": names,
            "disks_read_only": list(names),
            "disk_inodes": {k: [1, 1] for k in names},
            "disk_devices": {k: [1.0] * 6 for k in names},
        }
        frame = raw_heartbeat(**fields)
        assert 64 * 1024 < len(frame) < 128 * 1024
        await ws.send_bytes(frame)
        error, code, reason = await expect_rejection(ws)
        assert (code, reason) == (1009, "frame_too_large")
        assert error is not None
        metrics = await (await client.get("/metrics")).text()
        assert 'nodewatch_collector_protocol_errors_total{endpoint="ingest",reason="frame_too_large"} 1.0' in metrics
