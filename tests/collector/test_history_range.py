"""A viewer's ranged ``history_request`` (issue 12): the tiered answer of the HTTP history API, over the websocket.

A real collector on loopback with a real SQLite data dir in ``tmp_path``, filled beforehand
through the real engine with two spans of 1-Hz samples and a hole between them, so the
answers have both points and explicit gaps. Real websockets, msgpack and ``?format=json``.
Not here: tier choice and rollup maths themselves (tests/collector/store/), the version-1
request's other cases (tests/collector/test_app.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.history_query import RangeRequests, resolve_range
from collector.store.model import NodeRow, Sample
from collector.store.sqlite_engine import SqliteEngine
from shared.codec import COLLECTOR_LIMITS, decode, decode_json, encode, encode_json
from shared.errors import CloseCode
from shared.messages import Error, HistoryRequest, NodeHistory
from tests.support.clock import FakeClock
from tests.support.collector import RECEIVE_TIMEOUT_S, connect_agent, fast_config, send_heartbeat
from tests.support.messages import facts, heartbeat, hello

NODE = "node-a"
# The stored spans, in seconds before the test's "now": two hours ago for 30 min, then a hole of
# an hour, then 20 min ending 10 min ago (and nothing since: a gap at the end too).
SPAN_A = (7200, 5400)
SPAN_B = (1800, 600)


def _samples(now: float, span: tuple[int, int], first_seq: int) -> list[Sample]:
    """1-Hz samples over ``span`` with cpu = seq % 100 and the other series constant."""
    start, end = span
    rest = (50.5, 0.25, 1000.0, 0.0, None, 8.0)
    return [
        Sample(NODE, "inst-1", first_seq + k, now - start + k, (float((first_seq + k) % 100), *rest))
        for k in range(start - end)
    ]


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, float]:
    """A data dir holding ``NODE``'s registry row and both spans, and the "now" they count back from."""
    now = time.time()
    engine = SqliteEngine(tmp_path)
    try:
        facts_frame = msgpack.packb(facts().model_dump(mode="python", exclude_none=True))
        row = NodeRow(NODE, "inst-1", facts_frame, 1.0, "online", now - 600, reason="hello", last_seen_at=now - 600)
        engine.write(_samples(now, SPAN_A, 1), [row])
        engine.write(_samples(now, SPAN_B, 1801), [])
    finally:
        engine.close()
    return tmp_path, now


async def _collector(aiohttp_client: Any, data_dir: Path | None, **kwargs: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(fast_config(data_dir=data_dir), **kwargs))
    return client


async def _subscribe(client: TestClient[Any, Any], fmt: str = "msgpack") -> aiohttp.ClientWebSocketResponse:
    """A viewer past its snapshot."""
    ws = await client.ws_connect("/api/v1/subscribe" + ("?format=json" if fmt == "json" else ""))
    await ws.receive(timeout=RECEIVE_TIMEOUT_S)
    return ws


async def _next_history_frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next ``history`` message as the plain map on the wire (msgpack or JSON), skipping updates."""
    async with asyncio.timeout(RECEIVE_TIMEOUT_S * 2):
        while True:
            msg = await ws.receive()
            assert msg.type in {WSMsgType.BINARY, WSMsgType.TEXT}, f"expected a frame, got {msg.type!r} {msg.data!r}"
            text = msg.type is WSMsgType.TEXT
            raw: dict[str, Any] = json.loads(msg.data) if text else msgpack.unpackb(msg.data)
            if raw["type"] == "history":
                model = decode_json(msg.data, COLLECTOR_LIMITS) if text else decode(msg.data, COLLECTOR_LIMITS)
                assert isinstance(model, NodeHistory)  # and the viewer's own decoder takes it
                return raw


def _in_gap(gaps: list[list[float]], at: float) -> bool:
    return any(lo < at < hi for lo, hi in gaps)


class TestRangedRequest:
    async def test_two_hours_at_one_minute_come_from_the_minute_tier_with_the_hole_as_a_gap(
        self, aiohttp_client: Any, stored: tuple[Path, float]
    ) -> None:
        """Asking two hours at a 60 s step gives 1-min buckets of 60 samples, and the hour without data is a gap."""
        data_dir, now = stored
        client = await _collector(aiohttp_client, data_dir)
        viewer = await _subscribe(client)
        await viewer.send_bytes(encode(HistoryRequest(node_id=NODE, from_at=now - 7200, to_at=now, step_s=60.0)))
        answer = await _next_history_frame(viewer)
        answer_range = answer["range"]
        assert (answer_range["tier"], answer_range["step_s"], answer_range["node_id"]) == ("1m", 60.0, NODE)
        assert set(answer_range) >= {"min", "max", "avg", "count", "at", "gaps", "from_at", "to_at", "server_time_at"}
        assert "seq" not in answer_range
        assert len(answer_range["at"]) in {50, 51, 52}  # 30 + 20 minutes, each span may straddle one more bucket
        assert max(answer_range["count"]) == 60
        assert _in_gap(answer_range["gaps"], now - 3600)  # the hole between the spans
        assert _in_gap(answer_range["gaps"], now - 300)  # nothing in the last 10 minutes
        assert not _in_gap(answer_range["gaps"], now - 6000)
        assert not _in_gap(answer_range["gaps"], now - 1200)
        assert answer["history"]["seq"] == []  # the points are in range; history stays for version 1's schema
        await viewer.close()

    async def test_a_short_range_is_raw_points_with_the_missing_start_a_gap(
        self, aiohttp_client: Any, stored: tuple[Path, float]
    ) -> None:
        """Two minutes across the hole's end give raw points with their seqs, and the minute before them is a gap."""
        data_dir, now = stored
        client = await _collector(aiohttp_client, data_dir)
        viewer = await _subscribe(client)
        await viewer.send_bytes(encode(HistoryRequest(node_id=NODE, from_at=now - 1860, to_at=now - 1740.5)))
        answer_range = (await _next_history_frame(viewer))["range"]
        assert answer_range["tier"] == "raw"
        assert answer_range["seq"] == list(range(1801, 1861))
        assert "min" not in answer_range
        assert answer_range["gaps"] == [[now - 1860, answer_range["at"][0]]]
        await viewer.close()

    async def test_msgpack_json_and_the_http_api_carry_the_same_map(
        self, aiohttp_client: Any, stored: tuple[Path, float]
    ) -> None:
        """The same range over msgpack, over ?format=json and from GET .../history is one map, key for key."""
        data_dir, now = stored
        client = await _collector(aiohttp_client, data_dir)
        request = HistoryRequest(node_id=NODE, from_at=now - 7200, to_at=now, step_s=300.0)
        binary, text = await _subscribe(client), await _subscribe(client, "json")
        await binary.send_bytes(encode(request))
        await text.send_str(encode_json(request))
        over_msgpack = (await _next_history_frame(binary))["range"]
        over_json = (await _next_history_frame(text))["range"]
        params = {"from": repr(now - 7200), "to": repr(now), "step": "300"}
        over_http = await (await client.get(f"/api/v1/nodes/{NODE}/history", params=params)).json()
        for answer in (over_msgpack, over_json, over_http):
            answer.pop("server_time_at")
        assert over_msgpack["tier"] == "1m"
        assert over_msgpack == over_json == over_http
        await binary.close()
        await text.close()

    async def test_a_node_the_store_never_heard_of_is_one_gap(
        self, aiohttp_client: Any, stored: tuple[Path, float]
    ) -> None:
        """A range for an unknown node id is answered, with no points and the whole range one gap."""
        data_dir, now = stored
        client = await _collector(aiohttp_client, data_dir)
        viewer = await _subscribe(client)
        await viewer.send_bytes(encode(HistoryRequest(node_id="nobody", from_at=now - 600, to_at=now)))
        answer_range = (await _next_history_frame(viewer))["range"]
        assert (answer_range["at"], answer_range["gaps"]) == ([], [[now - 600, now]])
        await viewer.close()

    async def test_without_a_store_a_range_comes_from_the_memory_window_as_raw(self, aiohttp_client: Any) -> None:
        """An --ephemeral collector answers a ranged request from its in-memory window, marked raw."""
        client = await _collector(aiohttp_client, None)
        agent, _ = await connect_agent(client, hello())
        end = time.time()
        for seq in (1, 2, 5):
            await send_heartbeat(agent, heartbeat(seq, sampled_at=end - 5 + seq))
        viewer = await _subscribe(client)
        await viewer.send_bytes(encode(HistoryRequest(node_id=NODE, from_at=end - 10, to_at=end)))
        answer_range = (await _next_history_frame(viewer))["range"]
        assert (answer_range["tier"], answer_range["seq"]) == ("raw", [1, 2, 5])
        assert _in_gap(answer_range["gaps"], end - 1.5)  # seq 3 and 4 never came
        await agent.close()
        await viewer.close()


class TestVersionOneRequest:
    async def test_a_request_without_a_range_gets_the_version_one_answer(self, aiohttp_client: Any) -> None:
        """A history_request with only a node id is answered as before: the memory window, and no range key."""
        client = await _collector(aiohttp_client, None)
        agent, _ = await connect_agent(client, hello())
        for seq in (1, 2, 3):
            await send_heartbeat(agent, heartbeat(seq))
        viewer = await _subscribe(client)
        await viewer.send_bytes(encode(HistoryRequest(node_id=NODE)))
        answer = await _next_history_frame(viewer)
        assert set(answer) == {"type", "node_id", "history"}
        assert answer["history"]["seq"] == [1, 2, 3]
        await agent.close()
        await viewer.close()


BAD_RANGES = [
    pytest.param({"from_at": 200.0, "to_at": 100.0}, "expected from_at <= to_at, got from_at=200.0 to_at=100.0",
                 id="to-before-from"),
    pytest.param({"from_at": math.nan}, "from_at: Input should be a finite number", id="from-nan"),
    pytest.param({"to_at": math.inf}, "to_at: Input should be a finite number", id="to-inf"),
    pytest.param({"step_s": 0.0}, "step_s: Input should be greater than 0", id="step-zero"),
    pytest.param({"step_s": -60.0}, "step_s: Input should be greater than 0", id="step-negative"),
    pytest.param({"step_s": math.inf}, "step_s: Input should be a finite number", id="step-inf"),
]  # fmt: skip


class TestBadRange:
    @pytest.mark.parametrize(("fields", "detail"), BAD_RANGES)
    async def test_a_bad_range_is_refused_naming_the_field(
        self, aiohttp_client: Any, fields: dict[str, float], detail: str
    ) -> None:
        """A range the schema refuses gets an ``error`` that names the field and value, then close 1008."""
        client = await _collector(aiohttp_client, None)
        viewer = await _subscribe(client)
        await viewer.send_bytes(msgpack.packb({"type": "history_request", "node_id": NODE, **fields}))
        error = decode((await viewer.receive(timeout=RECEIVE_TIMEOUT_S)).data, COLLECTOR_LIMITS)
        assert isinstance(error, Error)
        assert error.reason == "schema"
        assert detail in error.detail
        closing = await viewer.receive(timeout=RECEIVE_TIMEOUT_S)
        assert (closing.type, closing.data) == (WSMsgType.CLOSE, CloseCode.POLICY_VIOLATION)

    async def test_a_non_finite_bound_in_json_is_refused_as_malformed(self, aiohttp_client: Any) -> None:
        """Over ?format=json, NaN is not JSON: the error says a finite number was expected."""
        client = await _collector(aiohttp_client, None)
        viewer = await _subscribe(client, "json")
        await viewer.send_str('{"type": "history_request", "node_id": "node-a", "from_at": NaN}')
        error = json.loads((await viewer.receive(timeout=RECEIVE_TIMEOUT_S)).data)
        assert error["type"] == "error"
        assert error["reason"] == "malformed_json"
        assert "expected a finite number, got NaN" in error["detail"]


class TestPacing:
    async def test_ranged_requests_past_the_burst_wait_for_their_token_and_are_all_answered(
        self, aiohttp_client: Any
    ) -> None:
        """Ten ranged requests are answered at once; the eleventh waits until the budget refills, then comes."""
        clock = FakeClock()
        client = await _collector(aiohttp_client, None, clock=clock)
        viewer = await _subscribe(client)
        for n in range(11):
            await viewer.send_bytes(encode(HistoryRequest(node_id=f"n-{n}", from_at=100.0, to_at=200.0)))
        answered = {(await _next_history_frame(viewer))["node_id"] for _ in range(10)}
        assert answered == {f"n-{n}" for n in range(10)}
        with pytest.raises(TimeoutError):  # no token: the eleventh is held, not refused and not dropped
            await viewer.receive(timeout=0.7)
        clock.advance(0.5)  # 2 tokens a second
        assert (await _next_history_frame(viewer))["node_id"] == "n-10"
        await viewer.close()

    async def test_a_newer_range_for_a_held_node_replaces_the_older(self, aiohttp_client: Any) -> None:
        """Two ranges for one node while it waits for its token: only the newer is answered (a chart's latest view)."""
        clock = FakeClock()
        client = await _collector(aiohttp_client, None, clock=clock)
        viewer = await _subscribe(client)
        for n in range(10):
            await viewer.send_bytes(encode(HistoryRequest(node_id=f"n-{n}", from_at=100.0, to_at=200.0)))
        for _ in range(10):
            await _next_history_frame(viewer)
        await viewer.send_bytes(encode(HistoryRequest(node_id=NODE, from_at=100.0, to_at=200.0)))
        await viewer.send_bytes(encode(HistoryRequest(node_id=NODE, from_at=150.0, to_at=250.0)))
        await asyncio.sleep(0.1)  # both are in before the token is
        clock.advance(1.0)  # two tokens: room for both, had the first been kept
        answer_range = (await _next_history_frame(viewer))["range"]
        assert (answer_range["from_at"], answer_range["to_at"]) == (150.0, 250.0)
        with pytest.raises(TimeoutError):
            await viewer.receive(timeout=0.7)
        await viewer.close()

    async def test_requests_without_a_range_are_not_paced(self, aiohttp_client: Any) -> None:
        """Version-1 requests cost no disk read, so a viewer past its range budget still gets them at once."""
        clock = FakeClock()
        client = await _collector(aiohttp_client, None, clock=clock)
        viewer = await _subscribe(client)
        for n in range(11):
            await viewer.send_bytes(encode(HistoryRequest(node_id=f"n-{n}", from_at=100.0, to_at=200.0)))
        for _ in range(10):
            await _next_history_frame(viewer)
        await viewer.send_bytes(encode(HistoryRequest(node_id="plain")))
        answer = await _next_history_frame(viewer)
        assert (answer["node_id"], "range" in answer) == ("plain", False)
        await viewer.close()


class TestRangeDefaults:
    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            pytest.param((None, None, 60.0), (5400.0, 9000.0, 60.0), id="only-step: the last hour"),
            pytest.param((1000.0, None, None), (1000.0, 9000.0, 0.0), id="only-from: up to now, finest"),
            pytest.param((None, 5000.0, None), (1400.0, 5000.0, 0.0), id="only-to: the hour before it"),
            pytest.param((9500.0, None, None), (9500.0, 9500.0, 0.0), id="from-in-the-future: empty, no error"),
            pytest.param((None, 100.0, None), (0.0, 100.0, 0.0), id="to-near-the-epoch: from stays >= 0"),
        ],
    )
    def test_missing_bounds_default_as_the_http_api_does(
        self, fields: tuple[float | None, float | None, float | None], expected: tuple[float, float, float]
    ) -> None:
        """A range with a bound left out covers what GET .../history would: the hour up to now, finest step."""
        assert resolve_range(*fields, wall=9000.0) == expected

    def test_the_budget_is_ten_in_a_row_then_two_a_second(self) -> None:
        """Ten ranged requests go at once, the eleventh half a second later, by the clock passed in."""
        clock = FakeClock()
        budget = RangeRequests(clock())
        assert [budget.take(clock()) for _ in range(11)] == [True] * 10 + [False]
        assert budget.wait_s(clock()) == pytest.approx(0.5)
        clock.advance(0.5)
        assert budget.take(clock())
