"""A peer refused again and again gets HTTP 429 before upgrading (docs/security.md, 3.3), and its neighbours do not.

Against a real collector on loopback, with the fake clock passed to ``create_app`` so the
budgets and the cooldown move only when the test says so. Fails on the code before, where
every reconnect of a refused flooder was upgraded, read a hello and 10 frames (bench/faults.py,
"One flooding connection": honest ack p99 2.2 → 59 ms).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from collector.app import create_app
from collector.trust.penalty import (
    BASE_COOLDOWN_S,
    DECAY_S,
    FREE_REFUSALS,
    MAX_COOLDOWN_S,
    RefusalPenalty,
    header_value,
)
from shared.codec import encode
from tests.support.clock import FakeClock
from tests.support.collector import connect_agent, expect_rejection, fast_config
from tests.support.messages import heartbeat, hello
from tests.support.processes import ProcessGroup, metric

TOKEN_A, TOKEN_B = "token-a-" + "a" * 24, "token-b-" + "b" * 24
FLOOD_FRAMES = 12  # a fresh connection's burst is 10 frames (collector.trust.budget.MIN_BURST_FRAMES)


async def _collector(aiohttp_client: Any, clock: FakeClock) -> TestClient[Any, Any]:
    config = fast_config(agent_tokens=frozenset({TOKEN_A, TOKEN_B}))
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config, clock=clock))
    return client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _flood_once(client: TestClient[Any, Any], node_id: str, token: str) -> int | None:
    """One flooder's connection: a hello, then duplicate heartbeats until refused; the close code."""
    ws, _ = await connect_agent(client, hello(node_id=node_id, interval_s=0.05, newest_seq=0), _auth(token))
    for _ in range(FLOOD_FRAMES):
        await ws.send_bytes(encode(heartbeat(1)))
    _, code, _ = await expect_rejection(ws)
    return code


async def _metric(client: TestClient[Any, Any], name: str) -> float:
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"expected {name} in /metrics, got none")


class TestRefusalCooldown:
    """The ingest handler's side: 429 with Retry-After within a cooldown, for that address and token only."""

    async def test_a_flooder_reconnecting_after_its_refusals_gets_429_before_any_upgrade(
        self, aiohttp_client: Any
    ) -> None:
        """After more than four 4430s, the flooder's next upgrade is answered 429 with Retry-After, and counted."""
        client = await _collector(aiohttp_client, FakeClock())
        for round_ in range(FREE_REFUSALS + 1):
            assert await _flood_once(client, f"flood-{round_}", TOKEN_A) == 4430
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/api/v1/ingest", headers=_auth(TOKEN_A))
        assert refused.value.status == 429
        assert refused.value.headers is not None
        assert refused.value.headers["Retry-After"] == "1"
        assert await _metric(client, "nodewatch_collector_ingest_penalized_total") == 1
        assert await _metric(client, "nodewatch_collector_ingest_penalties_total") == 1

    async def test_another_token_behind_the_same_address_still_connects(self, aiohttp_client: Any) -> None:
        """A neighbour behind the flooder's address (a NAT) with its own token is acked during the cooldown."""
        client = await _collector(aiohttp_client, FakeClock())
        for round_ in range(FREE_REFUSALS + 1):
            await _flood_once(client, f"flood-{round_}", TOKEN_A)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await client.ws_connect("/api/v1/ingest", headers=_auth(TOKEN_A))
        ws, ack = await connect_agent(client, hello(node_id="neighbour"), _auth(TOKEN_B))
        assert ack.seq == 0
        await ws.close()

    async def test_the_same_token_connects_again_once_the_cooldown_is_over(self, aiohttp_client: Any) -> None:
        """An honest agent sharing the flooder's address and token is acked after Retry-After, not locked out."""
        clock = FakeClock()
        client = await _collector(aiohttp_client, clock)
        for round_ in range(FREE_REFUSALS + 1):
            await _flood_once(client, f"flood-{round_}", TOKEN_A)
        for _ in range(50):  # 429s neither extend nor re-arm the cooldown
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await client.ws_connect("/api/v1/ingest", headers=_auth(TOKEN_A))
        clock.advance(BASE_COOLDOWN_S)
        ws, ack = await connect_agent(client, hello(node_id="honest"), _auth(TOKEN_A))
        assert ack.seq == 0
        await ws.close()


class TestCollectorProcess:
    """``nodewatch collector`` answers the cooldown's 429 in its admission layer, before aiohttp sees the request."""

    async def test_a_real_collector_answers_a_refused_flooder_with_429_before_aiohttp(
        self, group: ProcessGroup
    ) -> None:
        """After five 4430s the flooder's next upgrade gets a 429 with Retry-After and no aiohttp Server header."""
        collector = await asyncio.to_thread(group.collector)
        url = collector.url + "/api/v1/ingest"
        async with aiohttp.ClientSession() as session:
            for round_ in range(FREE_REFUSALS + 1):
                async with session.ws_connect(url) as ws:
                    await ws.send_bytes(encode(hello(node_id=f"flood-{round_}", interval_s=0.05, newest_seq=0)))
                    for _ in range(FLOOD_FRAMES):
                        await ws.send_bytes(encode(heartbeat(1)))
                    while (msg := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY:
                        pass
                    assert msg.data == 4430
            async with session.get(url, headers={"Connection": "Upgrade", "Upgrade": "websocket"}) as answer:
                assert answer.status == 429
                assert int(answer.headers["Retry-After"]) >= 1
                assert "Server" not in answer.headers  # the admission layer's canned answer, not aiohttp's
                assert (await answer.json())["error"] == "rate_exceeded"
            assert await metric(session, collector.url, "nodewatch_collector_ingest_penalized_total") == 1


class TestRefusalPenalty:
    """The pure score: which refusals count, how the cooldown grows, and that it decays."""

    def test_a_few_refusals_cost_nothing(self) -> None:
        """Up to four 4430 refusals in a row arm no cooldown: an agent over a budget now and then is not penalised."""
        penalty = RefusalPenalty()
        for _ in range(FREE_REFUSALS):
            assert not penalty.refused("10.0.0.1", "token-0", 4430, now=0.0)
        assert penalty.check("10.0.0.1", "token-0", now=0.0) is None

    @pytest.mark.parametrize("code", [1000, 1001, 1008, 1009, 1011, 4403, 4409, 4503])
    def test_other_close_codes_are_not_refusals_of_the_peer(self, code: int) -> None:
        """A protocol error (a fuzzer keeps its close codes), a node-table close or an ordinary end never counts."""
        penalty = RefusalPenalty()
        for _ in range(3 * FREE_REFUSALS):
            assert not penalty.refused("10.0.0.1", "token-0", code, now=0.0)
        assert penalty.check("10.0.0.1", "token-0", now=0.0) is None

    def test_the_cooldown_doubles_per_refusal_up_to_its_cap(self) -> None:
        """Each refusal past the free ones doubles the wait: 1, 2, 4 ... s, never more than 30 s."""
        penalty = RefusalPenalty()
        for _ in range(FREE_REFUSALS):
            penalty.refused("10.0.0.1", "token-0", 4430, now=0.0)
        waits = []
        for _ in range(8):
            assert penalty.refused("10.0.0.1", "token-0", 4430, now=0.0)
            refused = penalty.check("10.0.0.1", "token-0", now=0.0)
            assert refused is not None
            waits.append(refused.retry_after_s)
        assert waits == [1, 2, 4, 8, 16, MAX_COOLDOWN_S, MAX_COOLDOWN_S, MAX_COOLDOWN_S]

    def test_the_score_decays_so_an_occasional_refusal_never_arms_it(self) -> None:
        """A 4430 once a minute keeps the score below the free refusals for good."""
        penalty = RefusalPenalty()
        for minute in range(100):
            assert not penalty.refused("10.0.0.1", "token-0", 4430, now=minute * DECAY_S)

    def test_addresses_and_ipv6_blocks_are_separate_keys(self) -> None:
        """Another address is not penalised; another address of the same IPv6 /64 is."""
        penalty = RefusalPenalty()
        for _ in range(FREE_REFUSALS + 1):
            penalty.refused("2001:db8::1", "token-0", 4430, now=0.0)
        assert penalty.check("2001:db8::2", "token-0", now=0.0) is not None
        assert penalty.check("2001:db9::1", "token-0", now=0.0) is None
        assert penalty.check("2001:db8::1", "token-1", now=0.0) is None

    def test_keys_are_bounded(self) -> None:
        """Refusals from more addresses than ``max_keys`` keep at most that many scores."""
        penalty = RefusalPenalty(max_keys=8)
        for index in range(100):
            penalty.refused(f"10.0.0.{index}", "token-0", 4430, now=float(index))
        assert len(penalty) <= 8

    @pytest.mark.parametrize(
        ("head", "value"),
        [
            (b"GET /api/v1/ingest HTTP/1.1\r\nAuthorization: Bearer abc\r\nHost: x\r\n\r\n", "Bearer abc"),
            (b"GET /api/v1/ingest HTTP/1.1\r\nAUTHORIZATION:Bearer abc\r\n\r\n", "Bearer abc"),
            (b"GET /api/v1/ingest HTTP/1.1\r\nX-Authorization: no\r\n\r\n", ""),
            (b"GET /api/v1/ingest HTTP/1.1\r\nHost: x\r\n\r\n", ""),
            (b"GET /api/v1/ingest HTTP/1.1\r\nAuthorization: Bearer \xff\r\n\r\n", "Bearer \udcff"),
        ],
        ids=["plain", "upper-case name", "another header", "absent", "not UTF-8"],
    )
    def test_the_head_readers_authorization_is_the_handlers(self, head: bytes, value: str) -> None:
        """The raw head's Authorization value, as the label of a refused token needs it (any case, any bytes)."""
        assert header_value(head, b"authorization") == value
