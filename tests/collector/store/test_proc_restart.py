"""The writer process restarts by itself after it dies, and the store ends with every seq once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from collector.store.codec import decode_batch_seqs, decode_raw
from collector.store.durability import AckGate
from collector.store.model import Durable, NodeRow, Sample
from collector.store.proc import ProcessWriter
from collector.store.restart import HEALTHY_S, RESTART_MAX_S, RESTART_S, RestartPolicy
from collector.store.sqlite_engine import DB_NAME, SqliteEngine
from tests.support.clock import FakeClock
from tests.support.processes import ProcessGroup, agent_connections, gaps, health, last_seqs, wait_until

WAIT_S = 20.0  # a cold child start (imports, open) on 2 busy cores, plus the first restart's delay
INTERVAL_S = 0.2


def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what``."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def stored_seqs(db: Path) -> list[int]:
    """Every raw seq the database file holds, duplicates included (heads and raw chunks; one instance assumed)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        seqs: list[int] = []
        for (blob,) in conn.execute("SELECT data FROM head_0 UNION ALL SELECT data FROM head_1"):
            seqs.extend(decode_batch_seqs(blob)[1])
        for (blob,) in conn.execute("SELECT data FROM chunks WHERE tier = 0"):
            seqs.extend(decode_raw(blob).seq)
        return sorted(seqs)
    finally:
        conn.close()


def sample(seq: int) -> Sample:
    """Sample ``seq`` of node n1."""
    return Sample("n1", "i1", seq, 1_800_000_000.0 + seq, (10.0, 20.0, 0.5, 1e3, 2e3, None, 4.0))


class TestRestartPolicy:
    def test_a_child_dying_at_every_start_is_retried_with_a_doubling_delay_up_to_the_cap(self) -> None:
        """Deaths right after each start wait 0.5, 1, 2 ... s, never more than 30 s, and each restart is counted."""
        clock = FakeClock()
        policy = RestartPolicy(clock)
        policy.started()
        delays = []
        for _ in range(9):
            delays.append(policy.died())
            clock.advance(delays[-1])
            policy.restarted()
            policy.started()
        assert delays == [RESTART_S * 2**k for k in range(6)] + [RESTART_MAX_S] * 3
        assert policy.restarts == 9

    def test_a_child_that_ran_a_minute_starts_the_backoff_again(self) -> None:
        """After 60 s of a healthy child, its death is retried after 0.5 s again."""
        clock = FakeClock()
        policy = RestartPolicy(clock)
        policy.started()
        assert [policy.died(), policy.died(), policy.died()] == [0.5, 1.0, 2.0]
        policy.started()
        clock.advance(HEALTHY_S - 1)
        assert policy.died() == 4.0
        policy.started()
        clock.advance(HEALTHY_S)
        assert policy.died() == RESTART_S


class TestAckGateLost:
    def test_nodes_with_samples_in_flight_get_a_hole_and_resync_from_their_durable_seq(self) -> None:
        """A dead writer's uncommitted samples are replayed: those nodes resync, a node with nothing in flight not."""
        gate = AckGate(interval_s=5.0)
        gate.hello("a", "i", None, 0, 0.0, slot=0)
        gate.hello("b", "i", None, 0, 0.0, slot=1)
        for seq in range(1, 6):
            gate.appended("a", "i", seq, accepted=True)
            gate.appended("b", "i", seq, accepted=True)
        gate.committed_slots([0, 3, 1, 5])
        assert gate.lost() == 1
        assert (gate.accepted_seq("a"), gate.durable_seq("a")) == (3, 3)
        assert gate.resyncs(store_accepting=False) == []
        assert gate.resyncs(store_accepting=True) == ["a"]
        assert gate.hello("a", "i", None, 0, 1.0, slot=0) == 3  # the agent replays 4 and 5


class TestProcessWriterRestart:
    def test_a_killed_writer_process_comes_back_and_commits_again(self, tmp_path: Path) -> None:
        """kill -9 of the writer: degraded naming the exit and the restart, then a new pid, ok, and commits again."""
        engine = SqliteEngine(tmp_path)
        durables: list[Durable] = []  # list.extend from the receiver thread: atomic
        writer = ProcessWriter(tmp_path, "NORMAL", durables.extend, policy=RestartPolicy())
        writer.start()
        try:
            writer.put_node(NodeRow("n1", "i1", b"\x80", 1.0, "online", time.time()))
            for seq in range(1, 11):
                assert writer.append(sample(seq))
            assert writer.flush(WAIT_S)
            old = writer.pid
            assert old is not None
            os.kill(old, signal.SIGKILL)
            until(lambda: writer.health().status == "degraded", "health degraded")
            reason = writer.health().reason or ""
            assert "writer process exited (status -9)" in reason
            assert "restarting it in 0.5 s (restart 1)" in reason
            until(lambda: writer.health().status == "ok", "health ok again")
            assert writer.pid not in {None, old}
            assert writer.health().restarts == 1
            # The replay of seqs the dead child committed (the gate may not have heard): stored once.
            for seq in range(5, 16):
                assert writer.append(sample(seq))
            assert writer.flush(WAIT_S)
            assert writer.health().committed_samples == 15
            assert max(d.seq for d in durables) == 15
        finally:
            writer.close()
            engine.close()
        assert stored_seqs(tmp_path / DB_NAME) == list(range(1, 16))

    def test_close_cancels_a_pending_restart(self, tmp_path: Path) -> None:
        """A collector shutting down while its writer is dead does not start another one."""
        engine = SqliteEngine(tmp_path)
        policy = RestartPolicy(first_s=3.0)  # surely still pending at close, however slow this machine is
        writer = ProcessWriter(tmp_path, "NORMAL", lambda durables: None, policy=policy)
        writer.start()
        try:
            assert writer.flush(WAIT_S)
            old = writer.pid
            assert old is not None
            os.kill(old, signal.SIGKILL)
            until(lambda: writer.health().status == "degraded", "health degraded")
        finally:
            writer.close()
            engine.close()
        time.sleep(policy.first_s + 0.5)  # past the restart's delay: nothing may have started
        assert writer.pid == old
        assert writer.health().restarts == 0


def writer_pid(collector_pid: int) -> int | None:
    """The pid of the collector's writer process (its child running ``collector.store.child``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == collector_pid and b"collector.store.child" in cmdline:
            return int(entry.name)
    return None


class TestCollectorWriterRestart:
    async def test_a_killed_writer_restarts_and_the_agent_replays_into_a_gap_free_store(
        self, procs: ProcessGroup, tmp_path: Path
    ) -> None:
        """kill -9 of the writer under a real agent: degraded, back to ok by itself, and the store holds 1..N once."""
        collector = procs.collector()
        env = {**os.environ, "NODEWATCH_STATE_DIR": str(tmp_path / "agent-state")}
        agent = procs.agent(collector.url, "restart-1", "--interval", str(INTERVAL_S), env=env)
        async with aiohttp.ClientSession() as session:

            async def store_status(wanted: str) -> bool:
                return bool((await health(session, collector.url))["store"]["status"] == wanted)

            def sampling(n: int) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    return (await last_seqs(session, collector.url)).get("restart-1", 0) >= n

                return check

            await wait_until(sampling(10), WAIT_S, "the agent to push 10 samples")
            old = writer_pid(collector.proc.pid)
            assert old is not None
            # Stopped first, so the samples that arrive meanwhile are surely in flight (appended, never committed).
            os.kill(old, signal.SIGSTOP)
            stopped_at = (await last_seqs(session, collector.url))["restart-1"]
            await wait_until(sampling(stopped_at + 2), WAIT_S, "samples sent to the stopped writer")
            os.kill(old, signal.SIGKILL)
            degraded: dict[str, Any] = {}

            async def store_degraded() -> bool:
                degraded.update((await health(session, collector.url))["store"])
                return bool(degraded["status"] == "degraded")

            await wait_until(store_degraded, WAIT_S, "the store degraded")
            assert "writer process exited (status -9)" in degraded["reason"]
            assert "restarting it in 0.5 s (restart 1)" in degraded["reason"]
            assert (await last_seqs(session, collector.url))["restart-1"] >= stopped_at + 2  # liveness went on
            await wait_until(lambda: store_status("ok"), WAIT_S, "the store back to ok")
            new = writer_pid(collector.proc.pid)
            assert new not in {None, old}
            assert (await health(session, collector.url))["store"]["restarts"] == 1
            seen = (await last_seqs(session, collector.url))["restart-1"]
            await wait_until(lambda: _reconnected(agent.log_text()), WAIT_S, "the agent resynced")
            await wait_until(sampling(seen + 10), WAIT_S, "10 more samples")
        assert agent.terminate() == 0, agent.log_text()[-2000:]
        assert collector.proc.terminate() == 0, collector.proc.log_text()[-2000:]
        seqs = stored_seqs(procs.data_dir / DB_NAME)
        assert seqs[0] == 1
        assert gaps(seqs) == []
        assert len(seqs) == len(set(seqs)), "a seq stored twice"


async def _reconnected(log_text: str) -> bool:
    return agent_connections(log_text) >= 2
