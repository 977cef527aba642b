"""Tests that docs/protocol.md, the contract for third-party agents and viewers, matches shared/."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from shared.codec import COLLECTOR_LIMITS, decode_json, encode
from shared.errors import CLOSE_CODE_FOR_REASON, CloseCode, ErrorReason
from shared.messages import (
    MESSAGE_TYPES,
    GpuReading,
    History,
    HistoryRange,
    NodeEntry,
    NodeFacts,
    NodeStatus,
    ProcessUsage,
    RangeSeries,
    WireModel,
)
from shared.retry import ABNORMAL_CLOSURE, RETRY_BY_CLOSE_CODE, RETRY_BY_HTTP_STATUS, RetryAction, RetryPolicy

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
NESTED_MODELS: tuple[type[WireModel], ...] = (
    NodeFacts,
    NodeStatus,
    History,
    NodeEntry,
    ProcessUsage,
    GpuReading,
    HistoryRange,
    RangeSeries,
)
# "### Hello (389 bytes msgpack)" followed by a ```json block
EXAMPLE = re.compile(r"^### (\w+) \((\d[\d,]*) bytes msgpack\)\s*```json\n(.*?)\n```", re.MULTILINE | re.DOTALL)


@cache
def _protocol_md() -> str:
    if not PROTOCOL_MD.is_file():
        pytest.fail(f"expected the protocol contract at {PROTOCOL_MD}, found nothing")
    return PROTOCOL_MD.read_text(encoding="utf-8")


def _mentions(text: str, name: str) -> bool:
    """True if ``name`` appears as code (`name`) or quoted ("name"), not merely as an English word."""
    return re.search(rf"[`\"]{re.escape(name)}[`\"]", text) is not None


class TestProtocolDoc:
    """docs/protocol.md names everything a third party needs from shared/."""

    @pytest.mark.parametrize("model", MESSAGE_TYPES, ids=lambda model: model.__name__)
    def test_names_every_message_and_its_type_tag(self, model: type[WireModel]) -> None:
        """Each top-level message appears by class name and by its ``type`` tag."""
        text = _protocol_md()
        tag = model.model_fields["type"].default
        assert _mentions(text, model.__name__), f"docs/protocol.md does not name {model.__name__}"
        assert _mentions(text, tag), f"docs/protocol.md does not name the type tag {tag!r}"

    @pytest.mark.parametrize("model", NESTED_MODELS, ids=lambda model: model.__name__)
    def test_names_every_nested_model(self, model: type[WireModel]) -> None:
        """Each nested structure a message carries appears by name."""
        assert _mentions(_protocol_md(), model.__name__), f"docs/protocol.md does not name {model.__name__}"

    @pytest.mark.parametrize("model", [*MESSAGE_TYPES, *NESTED_MODELS], ids=lambda model: model.__name__)
    def test_names_every_field(self, model: type[WireModel]) -> None:
        """Every field of every model is documented, so a third-party agent can fill it in."""
        text = _protocol_md()
        missing = [name for name in model.model_fields if not _mentions(text, name)]
        assert not missing, f"docs/protocol.md does not name {model.__name__} fields {missing}"

    @pytest.mark.parametrize("code", list(CloseCode), ids=lambda code: code.name)
    def test_names_every_close_code(self, code: CloseCode) -> None:
        """Each close code the collector may send is listed with its number."""
        assert re.search(rf"\b{code.value}\b", _protocol_md()), f"docs/protocol.md does not list close code {code}"

    @pytest.mark.parametrize("reason", list(ErrorReason), ids=lambda reason: reason.value)
    def test_names_every_error_reason(self, reason: ErrorReason) -> None:
        """Each machine-readable reason appears, so a client can act on it."""
        assert _mentions(_protocol_md(), reason.value), f"docs/protocol.md does not name reason {reason.value!r}"


class TestProtocolExamples:
    """The examples in docs/protocol.md are valid messages of the size they claim."""

    def test_there_is_one_example_per_message(self) -> None:
        """Section 10 shows one example of every top-level message."""
        shown = {match.group(1) for match in EXAMPLE.finditer(_protocol_md())}
        assert shown >= {model.__name__ for model in MESSAGE_TYPES}

    def test_every_example_decodes_to_its_message_at_its_stated_size(self) -> None:
        """Each JSON example validates as the message it is titled, and its msgpack size is as stated."""
        examples = list(EXAMPLE.finditer(_protocol_md()))
        assert examples, "no examples found"
        for match in examples:
            name, size, body = match.group(1), int(match.group(2).replace(",", "")), match.group(3)
            message = decode_json(body, COLLECTOR_LIMITS)
            assert type(message).__name__ == name
            assert len(encode(message)) == size, f"{name}: {len(encode(message))} bytes, docs say {size}"


def _section(title_prefix: str) -> str:
    """The text of the section whose heading starts with ``title_prefix``, up to the next heading of its level."""
    text = _protocol_md()
    match = re.search(rf"^(#+) {re.escape(title_prefix)}.*?$", text, re.MULTILINE)
    assert match, f"docs/protocol.md has no section {title_prefix!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def field_table(model_name: str) -> list[tuple[str, bool]]:
    """(field, marked ``?``) of each row of the model's field table, in order.

    The table is the first ``| field |`` table after the heading or the line that starts by
    naming the model, and before the next heading.
    """
    text = _protocol_md()
    intro = re.search(rf"^(?:#+ .*`{model_name}`.*|`{model_name}`.*)$", text, re.MULTILINE)
    assert intro, f"docs/protocol.md has no heading or paragraph naming `{model_name}`"
    rest = text[intro.end() :]
    heading = re.search(r"^#", rest, re.MULTILINE)
    table = re.search(
        r"^\| field \|.*\n\|[-| ]+\|\n((?:\|.*\n)+)", rest[: heading.start()] if heading else rest, re.MULTILINE
    )
    assert table, f"docs/protocol.md has no field table for `{model_name}`"
    rows = []
    for line in table.group(1).splitlines():
        cell = re.match(r"\| `(\w+)`(\?)?", line)
        assert cell, f"`{model_name}`'s table has a row without a field name: {line!r}"
        rows.append((cell.group(1), cell.group(2) is not None))
    return rows


def render_retry_table() -> str:
    """The retry table as docs/protocol.md section 7 shows it, rendered from shared/retry.py."""
    action = {
        RetryAction.BACKOFF: "reconnect with backoff",
        RetryAction.BACKOFF_LONG: "back off long: at least the delay, every time",
    }

    def row(what: str, policy: RetryPolicy) -> str:
        return f"| {what} | {action[policy.action]} | {policy.min_delay_s:g} s | {policy.meaning} |"

    lines = ["| after | the peer | waits at least | meaning |", "|---|---|---|---|"]
    lines += [row(f"close {code}", policy) for code, policy in sorted(RETRY_BY_CLOSE_CODE.items())]
    lines += [row(f"HTTP {status}", policy) for status, policy in sorted(RETRY_BY_HTTP_STATUS.items())]
    return "\n".join(lines)


class TestTablesMatchTheCode:
    """The doc's tables are the code's tables, so a third party reads what the programs do."""

    @pytest.mark.parametrize("model", [*MESSAGE_TYPES, *NESTED_MODELS], ids=lambda model: model.__name__)
    def test_every_field_table_is_its_model(self, model: type[WireModel]) -> None:
        """Each model's table lists its fields in wire order, with ``?`` on exactly those that may be absent."""
        expected = [
            (name, not info.is_required() and info.default is None) for name, info in model.model_fields.items()
        ]
        assert field_table(model.__name__) == expected

    def test_retry_table_is_shared_retry(self) -> None:
        """Section 7's retry table is exactly shared/retry.py's (regenerate it from render_retry_table)."""
        match = re.search(r"<!-- retry-table:[^>]*-->\n(.*?)\n<!-- retry-table: end -->", _protocol_md(), re.DOTALL)
        assert match, "docs/protocol.md has no retry-table markers in section 7"
        assert match.group(1) == render_retry_table(), "the doc's retry table differs; paste:\n" + render_retry_table()

    def test_every_close_code_row_lists_exactly_its_reasons(self) -> None:
        """Each row of section 7's close-code table names exactly the reasons shared/errors.py closes with it."""
        rows: dict[int, set[str]] = {}
        for line in _section("7. Close codes").splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 4 and cells[0].isdigit():
                rows[int(cells[0])] = set(re.findall(r"`([a-z_0-9]+)`", cells[2]))
        expected: dict[int, set[str]] = {int(code): set() for code in CloseCode}
        for reason, code in CLOSE_CODE_FOR_REASON.items():
            expected[int(code)].add(reason.value)
        assert rows == expected

    def test_every_code_in_the_retry_table_is_a_close_code_or_1006(self) -> None:
        """The retry table covers every close code the collector sends, and 1006 for a dropped connection."""
        assert set(RETRY_BY_CLOSE_CODE) == {int(code) for code in CloseCode} | {ABNORMAL_CLOSURE}
