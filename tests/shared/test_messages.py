"""Tests of shared.messages: the field constraints a user or a third-party agent runs into, and the size budget."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.codec import INGEST_LIMITS, decode, encode, encode_json
from shared.errors import ErrorReason, ProtocolError
from shared.limits import MAX_CORES, MAX_DISKS, MAX_INTERFACES, MAX_SENSORS, MAX_TOP_PROCESSES
from shared.messages import (
    MESSAGE_TYPES,
    Ack,
    Heartbeat,
    Hello,
    History,
    HistoryRequest,
    NodeFacts,
    NodeStatus,
    ProcessUsage,
    Update,
)

MAX_INT64 = 2**63 - 1
FACTS: dict[str, Any] = {
    "hostname": "web-1",
    "os": "Linux",
    "os_release": "6.1.0-18-amd64",
    "platform": "Linux-6.1.0-18-amd64-x86_64-with-glibc2.36",
    "arch": "x86_64",
    "memory_total_bytes": 16 * 2**30,
    "agent_version": "0.1.0",
    "python_version": "3.11.2",
}
HELLO: dict[str, Any] = {
    "type": "hello",
    "node_id": "web-1",
    "agent_instance_id": "4f9c2d1e",
    "interval_s": 1.0,
    "sent_at": 1_700_000_000.0,
    "facts": FACTS,
}

# A 2-core VM with two mounts and two interfaces, every field an agent fills on plain Linux,
# at realistic magnitudes (16 GiB of RAM and terabyte disks need uint64; rates are full float64).
REALISTIC_HEARTBEAT = Heartbeat(
    seq=86_400,
    sampled_at=1_700_000_000.123456,
    cpu_percent=12.531914893617,
    cpu_per_core_percent=[10.204081632653, 14.851485148515],
    load_avg=[0.52, 0.61, 0.7],
    mem_used_bytes=5_368_709_120,
    mem_available_bytes=11_811_160_064,
    mem_percent=31.3,
    swap_total_bytes=2_147_483_648,
    swap_used_bytes=104_857_600,
    swap_percent=4.9,
    disks={"/": [1_099_511_627_776, 429_496_729_600], "/home": [2_199_023_255_552, 1_319_413_953_331]},
    disk_read_bytes_per_s=1_048_576.331,
    disk_write_bytes_per_s=524_288.927,
    net_rx_bytes_per_s=125_000.254,
    net_tx_bytes_per_s=62_500.753,
    net_interfaces={"enp0s31f6": [125_000.254, 62_500.753], "docker0": [0.0, 0.0]},
    process_count=312,
    uptime_s=864_000.52,
    sample_errors=0,
    late_ticks=3,
)
# The budget an agent's heartbeat stays within, so 1 Hz from thousands of nodes stays cheap.
HEARTBEAT_BUDGET_BYTES = 600


def _heartbeat(**changes: Any) -> dict[str, Any]:
    return {"type": "heartbeat", "seq": 1, "sampled_at": 1_700_000_000.0, **changes}


def _rejects(model: type[Any], data: dict[str, Any]) -> str:
    """Validate ``data`` as ``model``; return pydantic's message, failing if it was accepted."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return str(info.value)


class TestFieldConstraints:
    """The limits a user notices when an agent or viewer sends something out of range."""

    @pytest.mark.parametrize("field", ["cpu_percent", "mem_percent", "swap_percent"])
    @pytest.mark.parametrize("value", [-0.001, 100.001, 1e9])
    def test_percent_outside_0_to_100_is_refused(self, field: str, value: float) -> None:
        """A percentage below 0 or above 100 is a broken sample, not a busy machine."""
        _rejects(Heartbeat, _heartbeat(**{field: value}))

    @pytest.mark.parametrize("value", [0.0, 0, 100.0, 100, 55.5])
    def test_percent_bounds_are_inclusive(self, value: float) -> None:
        """0 and 100 are valid readings: an idle and a saturated CPU."""
        assert Heartbeat.model_validate(_heartbeat(cpu_percent=value)).cpu_percent == value

    def test_per_core_percent_is_bounded_too(self) -> None:
        """Each core's reading obeys the same 0-100 bound as the total."""
        assert "cpu_per_core_percent.1" in _rejects(Heartbeat, _heartbeat(cpu_per_core_percent=[50.0, 100.5]))

    def test_core_count_is_bounded(self) -> None:
        """At most MAX_CORES per-core readings: a bigger list is refused, not truncated."""
        Heartbeat.model_validate(_heartbeat(cpu_per_core_percent=[1.0] * MAX_CORES))
        _rejects(Heartbeat, _heartbeat(cpu_per_core_percent=[1.0] * (MAX_CORES + 1)))

    @pytest.mark.parametrize("seq", [0, -1, MAX_INT64 + 1])
    def test_heartbeat_seq_starts_at_1_and_fits_int64(self, seq: int) -> None:
        """Heartbeat seq counts from 1 (0 is what an ack means by "nothing held yet") and fits an int64."""
        _rejects(Heartbeat, _heartbeat(seq=seq))

    def test_ack_seq_may_be_0(self) -> None:
        """An ack of 0 tells a new agent instance the collector holds none of its samples."""
        assert Ack.model_validate({"type": "ack", "seq": 0}).seq == 0
        _rejects(Ack, {"type": "ack", "seq": -1})

    @pytest.mark.parametrize(
        "node_id",
        ["web-1", "db01.example.com", "10.0.0.7", "host:8080", "agent@rack-3", "my_container", "A", "x" * 128],
    )
    def test_node_id_accepts_hostnames_addresses_and_tags(self, node_id: str) -> None:
        """Hostnames, IP addresses and host:port or name@place tags are valid node ids."""
        assert HistoryRequest(node_id=node_id).node_id == node_id

    @pytest.mark.parametrize(
        "node_id",
        ["", "-web", ".hidden", "_web", "web 1", "web/1", "wéb", "web\n", "x" * 129, "../etc"],
    )
    def test_node_id_refuses_what_breaks_urls_logs_or_labels(self, node_id: str) -> None:
        """A node id is used in /api/v1/nodes/{node_id} and metric labels: no spaces, slashes or leading dots."""
        _rejects(HistoryRequest, {"type": "history_request", "node_id": node_id})

    @pytest.mark.parametrize("interval_s", [0.0, 0.049, 3600.1])
    def test_hello_interval_is_bounded(self, interval_s: float) -> None:
        """An agent cannot announce an interval that would make liveness meaningless (under 50 ms, over 1 h)."""
        _rejects(Hello, {**HELLO, "interval_s": interval_s})

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("disks", [1]),
            ("disks", []),
            ("disks", [1, 2, 3, 4]),
            ("net_interfaces", [1]),
            ("net_interfaces", []),
            ("net_interfaces", [1, 2, 3]),
        ],
    )
    def test_map_values_have_their_length(self, field: str, value: list[int]) -> None:
        """disks values are [total, used] or [total, used, available]; net_interfaces values are [rx, tx]."""
        _rejects(Heartbeat, _heartbeat(**{field: {"x": value}}))

    @pytest.mark.parametrize("value", [[10, 4], [10, 4, 6]])
    def test_disks_take_available_bytes_optionally(self, value: list[int]) -> None:
        """An agent may send [total, used, available] or, as older agents do, [total, used]."""
        assert Heartbeat.model_validate(_heartbeat(disks={"/": value})).disks == {"/": value}

    def test_load_avg_has_three_values(self) -> None:
        """load_avg is the 1, 5 and 15 minute averages, no more, no fewer."""
        _rejects(Heartbeat, _heartbeat(load_avg=[1.0, 2.0]))
        assert Heartbeat.model_validate(_heartbeat(load_avg=[1.0, 2.0, 3.0])).load_avg == [1.0, 2.0, 3.0]

    @pytest.mark.parametrize("celsius", [-273.16, 1000.1])
    def test_temperature_is_physical(self, celsius: float) -> None:
        """A sensor below absolute zero or above 1000 degrees Celsius is a driver bug, refused."""
        _rejects(Heartbeat, _heartbeat(temperatures={"cpu": celsius}))

    @pytest.mark.parametrize(
        ("field", "limit", "value"),
        [
            ("disks", MAX_DISKS, [1, 1]),
            ("net_interfaces", MAX_INTERFACES, [1.0, 1.0]),
            ("temperatures", MAX_SENSORS, 40.0),
        ],
    )
    def test_maps_are_bounded(self, field: str, limit: int, value: object) -> None:
        """Per-device maps hold at most their documented number of entries."""
        Heartbeat.model_validate(_heartbeat(**{field: {f"k{i}": value for i in range(limit)}}))
        _rejects(Heartbeat, _heartbeat(**{field: {f"k{i}": value for i in range(limit + 1)}}))

    def test_top_processes_are_bounded(self) -> None:
        """At most MAX_TOP_PROCESSES per top list."""
        process = {"pid": 1, "name": "init", "cpu_percent": 0.0, "rss_bytes": 1}
        _rejects(Heartbeat, _heartbeat(top_cpu=[process] * (MAX_TOP_PROCESSES + 1)))

    def test_process_cpu_may_exceed_100(self) -> None:
        """A multi-threaded process uses more than one core: its cpu_percent is not capped at 100."""
        assert ProcessUsage(pid=1, name="make", cpu_percent=350.0, rss_bytes=1).cpu_percent == 350.0

    def test_history_seq_entries_start_at_1(self) -> None:
        """History rows carry real heartbeat seqs, so 0 is refused there too."""
        columns: dict[str, Any] = {name: [None] for name in History.model_fields}
        columns |= {"seq": [0], "sampled_at": [1.0]}
        _rejects(History, columns)

    def test_node_state_is_one_of_three(self) -> None:
        """A node is online, stale or offline; any other state is refused."""
        status = {
            "node_id": "a",
            "state": "unknown",
            "state_since_at": 1.0,
            "interval_s": 1.0,
            "agent_instance_id": "x",
            "connected": False,
            "last_seq": 0,
        }
        _rejects(NodeStatus, status)
        assert NodeStatus.model_validate({**status, "state": "stale"}).state == "stale"

    def test_epoch_seconds_are_bounded(self) -> None:
        """An instant past year 3000 or before 1970 is refused, so no reader overflows a datetime."""
        _rejects(Heartbeat, _heartbeat(sampled_at=-1.0))
        _rejects(Heartbeat, _heartbeat(sampled_at=32_503_680_001.0))

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_nan_and_inf_are_refused_even_in_unbounded_fields(self, value: float) -> None:
        """clock_skew_s has no bounds, but still no NaN or inf: JSON could not carry them."""
        status = {
            "node_id": "a",
            "state": "online",
            "state_since_at": 1.0,
            "interval_s": 1.0,
            "agent_instance_id": "x",
            "connected": True,
            "last_seq": 0,
            "clock_skew_s": value,
        }
        _rejects(NodeStatus, status)

    def test_no_coercion_from_strings(self) -> None:
        """Strict mode: "12.5" is not a percentage and "1" is not a seq, even though they would parse."""
        _rejects(Heartbeat, _heartbeat(cpu_percent="12.5"))
        _rejects(Heartbeat, _heartbeat(seq="1"))
        _rejects(Heartbeat, _heartbeat(seq=True))


class TestModelShape:
    """Models are immutable values that refuse unknown keys."""

    def test_models_are_frozen(self) -> None:
        """A received message cannot be changed in place by whoever holds it."""
        heartbeat = Heartbeat(seq=1, sampled_at=1.0)
        with pytest.raises(ValidationError):
            heartbeat.seq = 2  # type: ignore[misc]  # the point of the test
        assert heartbeat.seq == 1

    def test_frozen_models_are_hashable_values(self) -> None:
        """Two messages with the same fields are equal, whoever built them."""
        assert NodeFacts.model_validate(FACTS) == NodeFacts.model_validate(dict(FACTS))
        assert hash(Ack(seq=3)) == hash(Ack(seq=3))

    @pytest.mark.parametrize("model", [*MESSAGE_TYPES, NodeFacts, NodeStatus, History, ProcessUsage])
    def test_every_model_refuses_extra_keys(self, model: type[Any]) -> None:
        """A typo'd or future field is an error, not silently dropped: every model forbids extras."""
        assert model.model_config.get("extra") == "forbid"
        assert model.model_config.get("frozen") is True
        assert model.model_config.get("strict") is True

    def test_extra_key_in_nested_facts_is_refused(self) -> None:
        """extra=forbid applies inside nested models too, not only at the top level."""
        assert "facts.gpu" in _rejects(Hello, {**HELLO, "facts": {**FACTS, "gpu": "A100"}})

    def test_every_message_type_tag_is_unique(self) -> None:
        """Each top-level message has its own ``type`` tag, which the union discriminates on."""
        tags = [model.model_fields["type"].default for model in MESSAGE_TYPES]
        assert len(set(tags)) == len(tags) == len(MESSAGE_TYPES)
        assert all(isinstance(tag, str) and tag for tag in tags)

    def test_update_defaults_to_no_changes(self) -> None:
        """An update with no nodes and nothing removed is valid (a server-time tick)."""
        update = Update(server_time_at=1.0)
        assert (update.nodes, update.removed) == ([], [])


class TestHeartbeatSize:
    """The heartbeat is small enough to send every second from every node."""

    def test_realistic_heartbeat_fits_the_budget(self) -> None:
        """A 2-core, 2-mount, 2-interface heartbeat without top processes is at most 600 bytes of msgpack."""
        frame = encode(REALISTIC_HEARTBEAT)
        assert len(frame) <= HEARTBEAT_BUDGET_BYTES, f"heartbeat is {len(frame)} bytes"
        assert decode(frame) == REALISTIC_HEARTBEAT

    def test_json_is_larger_than_msgpack(self) -> None:
        """The same heartbeat as JSON text is bigger, which is why agents speak msgpack."""
        assert len(encode_json(REALISTIC_HEARTBEAT).encode()) > len(encode(REALISTIC_HEARTBEAT))

    def test_heartbeat_at_every_model_limit_is_refused_by_frame_size(self) -> None:
        """The ingest frame limit binds before the per-field limits, with the documented reason."""
        name_len = 256  # ShortText

        def name(index: int) -> str:
            return f"{index:03d}".ljust(name_len, "x")

        process = ProcessUsage(pid=MAX_INT64, name=name(0), cpu_percent=1e300, rss_bytes=MAX_INT64)
        heartbeat = Heartbeat(
            seq=MAX_INT64,
            sampled_at=1_700_000_000.5,
            cpu_percent=50.5,
            cpu_per_core_percent=[50.5] * MAX_CORES,
            load_avg=[1e300] * 3,
            mem_used_bytes=MAX_INT64,
            mem_available_bytes=MAX_INT64,
            mem_percent=50.5,
            swap_total_bytes=MAX_INT64,
            swap_used_bytes=MAX_INT64,
            swap_percent=50.5,
            disks={name(i): [MAX_INT64, MAX_INT64] for i in range(MAX_DISKS)},
            disk_read_bytes_per_s=1e300,
            disk_write_bytes_per_s=1e300,
            net_rx_bytes_per_s=1e300,
            net_tx_bytes_per_s=1e300,
            net_interfaces={name(i): [1e300, 1e300] for i in range(MAX_INTERFACES)},
            process_count=MAX_INT64,
            uptime_s=1e300,
            temperatures={name(i): 999.5 for i in range(MAX_SENSORS)},
            cgroup_cpu_limit_cores=1e300,
            cgroup_memory_limit_bytes=MAX_INT64,
            top_cpu=[process] * MAX_TOP_PROCESSES,
            top_memory=[process] * MAX_TOP_PROCESSES,
            sample_errors=MAX_INT64,
            late_ticks=MAX_INT64,
        )
        with pytest.raises(ProtocolError) as caught:
            decode(encode(heartbeat), INGEST_LIMITS)
        assert caught.value.reason is ErrorReason.FRAME_TOO_LARGE
