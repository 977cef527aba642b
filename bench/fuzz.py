"""Fuzz the codec with random and mutated frames, and optionally a running collector's websockets.

A standalone, seeded run (``random.Random(seed)``, no hypothesis) that proves no exception
but ``ProtocolError`` escapes ``shared.codec.decode`` / ``decode_json``, whatever the bytes,
and prints markdown tables: frames per mutator, ProtocolError reasons, other exceptions
(which must be zero; the exit status is 1 otherwise).

With ``--url ws://127.0.0.1:PORT`` it also opens connections to that collector's
``/api/v1/ingest`` and ``/api/v1/subscribe`` endpoints, sends fuzzed frames, records how
each connection ended, and checks ``/api/v1/health`` still answers between connections.

This is not a test (tests/shared/test_codec.py holds the hypothesis versions) and not a
load test (see bench/fleet.py). Loopback only, bounded in frames, connections and time.

    python bench/fuzz.py --frames 20000 --seed 1
    python bench/fuzz.py --url ws://127.0.0.1:8765 --connections 100
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import aiohttp

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.codec import (
    COLLECTOR_LIMITS,
    INGEST_LIMITS,
    SUBSCRIBE_REQUEST_LIMITS,
    DecodeLimits,
    decode,
    decode_json,
    encode,
    encode_json,
)
from shared.errors import CLOSE_CODE_FOR_REASON, CloseCode, ProtocolError
from shared.messages import (
    Ack,
    Error,
    Heartbeat,
    Hello,
    History,
    HistoryRequest,
    NodeEntry,
    NodeFacts,
    NodeHistory,
    NodeStatus,
    ProcessUsage,
    Snapshot,
    Update,
    WireModel,
)

LIMITS: dict[str, DecodeLimits] = {
    "ingest": INGEST_LIMITS,
    "subscribe-request": SUBSCRIBE_REQUEST_LIMITS,
    "collector": COLLECTOR_LIMITS,
}
# Bytes that mean something to a msgpack parser: type markers, length prefixes, the reserved 0xc1.
INTERESTING_BYTES = bytes([0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC7])
INTERESTING_BYTES += bytes([0xCA, 0xCB, 0xCF, 0xD3, 0xD4, 0xD9, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xE0, 0xFF])
# Headers that claim huge sizes: array32, map32, str32, bin32, ext32 of 4 G.
HUGE_CLAIMS = [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"]
HUGE_CLAIMS += [b"\xc9\xff\xff\xff\xff\x01"]
MAX_SHOWN_FAILURES = 5  # enough to debug, short enough to read
CONNECT_TIMEOUT_S = 5.0  # loopback: anything slower is a hung collector
CLOSE_WAIT_S = 2.0  # how long we wait for the collector to close a connection we fed garbage


# ---- valid frames to mutate ---------------------------------------------------------------------


def _text(rng: random.Random, max_len: int = 12) -> str:
    alphabet = string.ascii_letters + string.digits + "/._- éü€😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len)))


def _node_id(rng: random.Random) -> str:
    return rng.choice(string.ascii_lowercase) + "".join(
        rng.choice(string.ascii_lowercase + string.digits + "-._") for _ in range(rng.randint(0, 15))
    )


def _maybe(rng: random.Random, value: Any) -> Any:
    return value if rng.random() < 0.7 else None


def _facts(rng: random.Random) -> NodeFacts:
    return NodeFacts(
        hostname=_text(rng),
        os="Linux",
        os_release=_text(rng),
        platform=_text(rng),
        arch=rng.choice(["x86_64", "aarch64"]),
        cpu_count_logical=_maybe(rng, rng.randint(1, 64)),
        memory_total_bytes=rng.randint(0, 2**40),
        boot_time_at=_maybe(rng, rng.uniform(0, 2e9)),
        agent_version="0.1.0",
        python_version="3.11.7",
        in_container=rng.random() < 0.3,
    )


def _heartbeat(rng: random.Random) -> Heartbeat:
    cores = rng.randint(1, 8)
    return Heartbeat(
        seq=rng.randint(1, 2**40),
        sampled_at=rng.uniform(1.6e9, 1.9e9),
        cpu_percent=_maybe(rng, rng.uniform(0, 100)),
        cpu_per_core_percent=_maybe(rng, [rng.uniform(0, 100) for _ in range(cores)]),
        load_avg=_maybe(rng, [rng.uniform(0, 8) for _ in range(3)]),
        mem_used_bytes=_maybe(rng, rng.randint(0, 2**36)),
        mem_percent=_maybe(rng, rng.uniform(0, 100)),
        disks=_maybe(rng, {_text(rng): [rng.randint(0, 2**42), rng.randint(0, 2**41)] for _ in range(2)}),
        net_interfaces=_maybe(rng, {_text(rng): [rng.uniform(0, 1e8), rng.uniform(0, 1e8)] for _ in range(2)}),
        temperatures=_maybe(rng, {_text(rng): rng.uniform(20, 90)}),
        top_cpu=_maybe(
            rng,
            [
                ProcessUsage(pid=rng.randint(1, 2**22), name=_text(rng), cpu_percent=rng.uniform(0, 400), rss_bytes=1)
                for _ in range(rng.randint(0, 5))
            ],
        ),
        late_ticks=_maybe(rng, rng.randint(0, 10)),
    )


def _history(rng: random.Random) -> History:
    n = rng.randint(0, 6)

    def column() -> list[float | None]:
        return [None if rng.random() < 0.1 else rng.uniform(0, 100) for _ in range(n)]

    return History(
        seq=list(range(1, n + 1)),
        sampled_at=[1.7e9 + i for i in range(n)],
        cpu_percent=column(),
        mem_percent=column(),
        load_1=column(),
        net_rx_bytes_per_s=column(),
        net_tx_bytes_per_s=column(),
        disk_read_bytes_per_s=column(),
        disk_write_bytes_per_s=column(),
    )


def _entry(rng: random.Random) -> NodeEntry:
    status = NodeStatus(
        node_id=_node_id(rng),
        state=rng.choice(["online", "stale", "offline"]),
        state_since_at=rng.uniform(1.6e9, 1.9e9),
        reason=_maybe(rng, "agent_closed"),
        interval_s=1.0,
        agent_instance_id=_text(rng) or "x",
        connected=rng.random() < 0.5,
        last_seq=rng.randint(0, 2**20),
        clock_skew_s=_maybe(rng, rng.uniform(-5, 5)),
    )
    return NodeEntry(
        status=status,
        facts=_maybe(rng, _facts(rng)),
        last_sample=_maybe(rng, _heartbeat(rng)),
        history=_maybe(rng, _history(rng)),
    )


def valid_messages(rng: random.Random) -> list[WireModel]:
    """One fresh, valid message of every top-level type."""
    return [
        Hello(
            node_id=_node_id(rng),
            agent_instance_id=_text(rng) or "x",
            interval_s=rng.uniform(0.05, 60),
            sent_at=rng.uniform(1.6e9, 1.9e9),
            facts=_facts(rng),
        ),
        _heartbeat(rng),
        Ack(seq=rng.randint(0, 2**40)),
        Error(reason="schema", detail=_text(rng, 60)),
        Snapshot(server_time_at=1.7e9, nodes=[_entry(rng) for _ in range(rng.randint(0, 3))]),
        Update(server_time_at=1.7e9, nodes=[_entry(rng) for _ in range(rng.randint(0, 2))], removed=[_node_id(rng)]),
        HistoryRequest(node_id=_node_id(rng)),
        NodeHistory(node_id=_node_id(rng), history=_history(rng)),
    ]


# ---- mutators -----------------------------------------------------------------------------------

Mutator = Callable[[random.Random, bytes, bytes], bytes]


def _random_bytes(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    return rng.randbytes(rng.randint(0, 256))


def _bit_flips(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    out = bytearray(frame)
    for _ in range(rng.randint(1, 8)):
        bit = rng.randrange(len(out) * 8)
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _interesting_byte(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    out = bytearray(frame)
    for _ in range(rng.randint(1, 3)):
        out[rng.randrange(len(out))] = rng.choice(INTERESTING_BYTES)
    return bytes(out)


def _truncate(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    return frame[: rng.randrange(len(frame))]


def _splice(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    return frame[: rng.randint(0, len(frame))] + other[rng.randint(0, len(other)) :]


def _insert(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    at = rng.randint(0, len(frame))
    return frame[:at] + rng.randbytes(rng.randint(1, 8)) + frame[at:]


def _delete(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    at = rng.randrange(len(frame))
    return frame[:at] + frame[at + rng.randint(1, 8) :]


def _huge_claim(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    at = rng.randint(0, len(frame))
    return frame[:at] + rng.choice(HUGE_CLAIMS) + frame[at:]


def _nesting_bomb(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    depth = rng.choice([9, 11, 100, 1025, 5000])
    opener = rng.choice([b"\x91", b"\x81\xa1a"])
    return opener * depth + rng.choice([b"\x01", frame])


def _concatenate(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    return frame + other


def _duplicate_chunk(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    start = rng.randrange(len(frame))
    end = min(len(frame), start + rng.randint(1, 16))
    return frame[:end] + frame[start:end] + frame[end:]


MUTATORS: dict[str, Mutator] = {
    "random bytes": _random_bytes,
    "bit flips": _bit_flips,
    "interesting bytes": _interesting_byte,
    "truncation": _truncate,
    "splice of two frames": _splice,
    "insert random bytes": _insert,
    "delete bytes": _delete,
    "huge length claim": _huge_claim,
    "nesting bomb": _nesting_bomb,
    "two frames in one": _concatenate,
    "duplicated chunk": _duplicate_chunk,
}


# ---- the codec run ------------------------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes of one fuzz run, by mutator and by ProtocolError reason."""

    frames: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    others: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    decode_calls: int = 0

    def record(self, mutator: str, decoder: Callable[[Any, DecodeLimits], Any], payload: Any) -> None:
        """Decode ``payload`` under every limits set; count what came out."""
        self.frames[mutator] += 1
        for limits in LIMITS.values():
            self.decode_calls += 1
            try:
                decoder(payload, limits)
            except ProtocolError as error:
                self.refused[mutator] += 1
                self.reasons[error.reason.value] += 1
                if CLOSE_CODE_FOR_REASON.get(error.reason) is None:  # a reason without a close code
                    self._fail(mutator, payload, error)
            except Exception as error:  # noqa: BLE001  # the point of the fuzzer is to catch anything else
                self.others[mutator] += 1
                self._fail(mutator, payload, error)
            else:
                self.accepted[mutator] += 1

    def _fail(self, mutator: str, payload: Any, error: BaseException) -> None:
        if len(self.failures) < MAX_SHOWN_FAILURES:
            shown = payload[:64].hex() if isinstance(payload, bytes) else repr(payload[:64])
            trace = "".join(traceback.format_exception_only(type(error), error)).strip()
            self.failures.append(f"{mutator}: {trace} <- {shown}")


TEXT_INSERTS = ["NaN", "Infinity", "-Infinity", "1e999", "\\ud800", "[", "{", '"', ","]


def _mutate_text(rng: random.Random, text: str, other: str) -> str:
    """A JSON text frame, damaged the way a broken client or a fuzzer would."""
    at = rng.randint(0, len(text))
    damage: list[Callable[[], str]] = [
        lambda: text[:at],
        lambda: text[:at] + rng.choice(TEXT_INSERTS) + text[at:],
        lambda: text[:at] + other[rng.randint(0, len(other)) :],
        lambda: "[" * rng.choice([5, 11, 2000, 100_000]) + text,
        lambda: text[:at] + "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randint(1, 4))) + text[at:],
        lambda: text + other,
        lambda: text[:at] + text[at + rng.randint(1, 8) :],
    ]
    return rng.choice(damage)()


def fuzz_codec(frames: int, seed: int, max_seconds: float) -> tuple[Tally, Tally, float]:
    """Run ``frames`` msgpack frames and ``frames // 4`` JSON texts through the decoders."""
    rng = random.Random(seed)
    binary, text = Tally(), Tally()
    names = list(MUTATORS)
    started = time.monotonic()
    deadline = started + max_seconds
    corpus: list[WireModel] = []
    for index in range(frames):
        if index % 64 == 0:
            corpus = valid_messages(rng)  # fresh values now and then, cheap enough
            if time.monotonic() > deadline:
                break
        frame, other = (encode(rng.choice(corpus)) for _ in range(2))  # type: ignore[arg-type]  # a Message
        name = rng.choice(names)
        binary.record(name, decode, MUTATORS[name](rng, frame, other))
        if index % 4 == 0:
            json_frame, json_other = (encode_json(rng.choice(corpus)) for _ in range(2))  # type: ignore[arg-type]
            mutated = _mutate_text(rng, json_frame, json_other)
            text.record("json text", decode_json, mutated)
            text.record("json bytes", decode_json, mutated.encode("utf-8", "surrogatepass"))
    return binary, text, time.monotonic() - started


def print_codec_tables(binary: Tally, text: Tally, elapsed_s: float, seed: int) -> None:
    """Markdown: per mutator, then per reason, then any failure."""
    print(f"### Codec fuzz (seed {seed}, {elapsed_s:.1f} s, each frame decoded under {len(LIMITS)} limit sets)\n")
    print("| mutator | frames | decoded OK | ProtocolError | other exception |")
    print("|---|---:|---:|---:|---:|")
    for tally in (binary, text):
        for name in sorted(tally.frames):
            print(
                f"| {name} | {tally.frames[name]:,} | {tally.accepted[name]:,} | {tally.refused[name]:,} "
                f"| {tally.others[name]:,} |"
            )
    total = binary.frames.total() + text.frames.total()
    accepted = binary.accepted.total() + text.accepted.total()
    refused = binary.refused.total() + text.refused.total()
    others = binary.others.total() + text.others.total()
    print(f"| **total** | **{total:,}** | **{accepted:,}** | **{refused:,}** | **{others:,}** |\n")
    print("| ProtocolError reason | msgpack | JSON |")
    print("|---|---:|---:|")
    for reason in sorted(set(binary.reasons) | set(text.reasons)):
        print(f"| `{reason}` | {binary.reasons[reason]:,} | {text.reasons[reason]:,} |")
    print()
    for failure in binary.failures + text.failures:
        print(f"- FAILURE {failure}")


# ---- the live collector run ---------------------------------------------------------------------


@dataclass
class LiveTally:
    """How each fuzzed connection to a collector ended."""

    endings: Counter[str] = field(default_factory=Counter)
    health_ok: int = 0
    health_failed: list[str] = field(default_factory=list)
    unknown_codes: list[int] = field(default_factory=list)


def _http_base(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    if parts.scheme not in {"ws", "wss"}:
        raise ValueError(f"expected a ws:// or wss:// URL, got {ws_url!r}")
    return urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, "", "", ""))


async def _fuzz_connection(
    session: aiohttp.ClientSession, url: str, frames: Sequence[bytes | str], headers: dict[str, str], read_first: bool
) -> str:
    """Open one websocket, send ``frames``, and return how it ended, e.g. ``closed 1008 schema``."""
    import aiohttp

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S + CLOSE_WAIT_S * 2):
            async with session.ws_connect(
                url, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_WAIT_S), heartbeat=None
            ) as ws:
                if read_first:  # the snapshot, on subscribe
                    await ws.receive(timeout=CONNECT_TIMEOUT_S)
                for frame in frames:
                    if ws.closed:
                        break
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
                while True:  # drain until the collector closes, or stop waiting
                    msg = await ws.receive(timeout=CLOSE_WAIT_S)
                    if msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING}:
                        break
                    if msg.type is aiohttp.WSMsgType.ERROR:
                        return f"error {type(ws.exception()).__name__}"
                code = ws.close_code
                return f"closed {code} {msg.extra or ''}".strip()
    except aiohttp.WSServerHandshakeError as exc:
        return f"handshake refused HTTP {exc.status}"
    except TimeoutError:
        return "left open (we gave up waiting)"
    except aiohttp.ClientError as exc:
        return f"client error {type(exc).__name__}"


async def _health(session: aiohttp.ClientSession, base: str, tally: LiveTally) -> None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S), session.get(f"{base}/api/v1/health") as response:
            await response.json()
            if response.status == 200:
                tally.health_ok += 1
            else:
                tally.health_failed.append(f"HTTP {response.status}")
    except Exception as exc:  # noqa: BLE001  # any failure here is what we are looking for
        tally.health_failed.append(repr(exc)[:120])


async def fuzz_collector(url: str, connections: int, seed: int, token: str | None, max_seconds: float) -> LiveTally:
    """Alternate ingest and subscribe connections fed fuzzed frames, checking health in between."""
    import aiohttp

    rng = random.Random(seed)
    base = _http_base(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    tally = LiveTally()
    deadline = time.monotonic() + max_seconds
    names = list(MUTATORS)
    async with aiohttp.ClientSession() as session:
        await _health(session, base, tally)
        for index in range(connections):
            if time.monotonic() > deadline:
                break
            corpus = valid_messages(rng)
            mutated = [
                MUTATORS[rng.choice(names)](rng, encode(rng.choice(corpus)), encode(rng.choice(corpus)))  # type: ignore[arg-type]
                for _ in range(rng.randint(1, 4))
            ]
            endpoint = ("ingest", "subscribe", "subscribe?format=json")[index % 3]
            frames: list[bytes | str] = list(mutated)
            if endpoint == "ingest" and rng.random() < 0.5:
                frames.insert(0, encode(corpus[0]))  # type: ignore[arg-type]  # a valid hello first
            if endpoint == "ingest" and rng.random() < 0.1:
                frames.insert(0, encode_json(corpus[0]))  # type: ignore[arg-type]  # text on a binary endpoint
            if endpoint == "subscribe?format=json":
                frames = [_mutate_text(rng, encode_json(rng.choice(corpus)), encode_json(corpus[6]))]  # type: ignore[arg-type]
            ending = await _fuzz_connection(
                session, f"{url.rstrip('/')}/api/v1/{endpoint}", frames, headers, read_first=endpoint != "ingest"
            )
            tally.endings[f"{endpoint.split('?')[0]}{' (json)' if 'json' in endpoint else ''}: {ending}"] += 1
            code_text = ending.split()[1] if ending.startswith("closed ") else ""
            if code_text.isdigit() and int(code_text) not in set(CloseCode):
                tally.unknown_codes.append(int(code_text))
            await _health(session, base, tally)
    return tally


def print_live_table(tally: LiveTally, url: str) -> None:
    """Markdown: how connections ended, and whether health kept answering."""
    print(f"### Live collector fuzz ({url})\n")
    print("| endpoint: how the connection ended | connections |")
    print("|---|---:|")
    for ending, count in sorted(tally.endings.items()):
        print(f"| {ending} | {count:,} |")
    print()
    print(f"- /api/v1/health answered {tally.health_ok} times, failed {len(tally.health_failed)} times")
    for failure in tally.health_failed[:MAX_SHOWN_FAILURES]:
        print(f"- HEALTH FAILURE {failure}")
    for code in tally.unknown_codes[:MAX_SHOWN_FAILURES]:
        print(f"- UNKNOWN CLOSE CODE {code}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the codec fuzz (and the live one with --url); 1 if anything but ProtocolError escaped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=20_000, help="msgpack frames to try (default 20000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed, for a reproducible run (default 1)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop early after this long (default 300)")
    parser.add_argument("--url", help="also fuzz a running collector, e.g. ws://127.0.0.1:8765")
    parser.add_argument("--connections", type=int, default=60, help="connections for --url (default 60)")
    parser.add_argument("--token", help="bearer token for --url, if the collector wants one")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames: expected a positive number of frames, got {args.frames}")
    if args.url:
        try:
            _http_base(args.url)
        except ValueError as exc:
            parser.error(f"--url: {exc}")

    binary, text, elapsed_s = fuzz_codec(args.frames, args.seed, args.max_seconds)
    print_codec_tables(binary, text, elapsed_s, args.seed)
    failed = bool(binary.others.total() or text.others.total())
    if args.url:
        live = asyncio.run(fuzz_collector(args.url, args.connections, args.seed, args.token, args.max_seconds))
        print_live_table(live, args.url)
        failed = failed or bool(live.health_failed or live.unknown_codes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
