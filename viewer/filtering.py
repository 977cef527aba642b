"""The filter box's little language: which nodes to show.

Terms are separated by spaces and all must match:

- ``web`` (or ``"web:1"`` quoted): a case-insensitive substring of the node id or hostname,
  or a state word (``offline``);
- ``state:offline`` (``online``, ``stale``, ``offline``);
- ``cpu>80``, ``mem>90``, ``disk>90``, ``load>4`` with ``> >= < <= =``: live figures only,
  so a stale or offline node's old figures never match;
- ``label:role=web`` (exact key and value, case-sensitive) or ``label:role`` (has the key): the
  labels the agent was started with (``--label``, carried in ``facts.labels``);
- ``/regex/``: a Python regular expression searched in the node id or hostname.

``parse`` raises ``FilterError`` with words for the inline message: a bad filter is said
to be bad, never shown as an empty table. Pure: no Qt.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from viewer.cells import NodeRow, is_current
from viewer.format import fullest_disk_percent

Predicate = Callable[[NodeRow], bool]

_TOKEN: Final = re.compile(r'/(?:[^/\\]|\\.)*/?|"[^"]*"?|\S+')
_COMPARISON: Final = re.compile(r"^(?P<field>[a-z]+)(?P<op>>=|<=|>|<|=)(?P<value>.*)$")
_OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
}
_STATES: Final = ("online", "stale", "offline")
_EXPECTED: Final = "text, state:offline, cpu>80, mem>90, disk>90, load>4, label:role=web or /regex/"


class FilterError(ValueError):
    """A filter that cannot be understood; the message says where and what is accepted."""


def _cpu(row: NodeRow) -> float | None:
    return None if row.sample is None else row.sample.cpu_percent


def _mem(row: NodeRow) -> float | None:
    return None if row.sample is None else row.sample.mem_percent


def _disk(row: NodeRow) -> float | None:
    return None if row.sample is None else fullest_disk_percent(row.sample.disks)


def _load(row: NodeRow) -> float | None:
    if row.sample is None or row.sample.load_avg is None:
        return None
    return row.sample.load_avg[0]


_METRICS: Final[dict[str, Callable[[NodeRow], float | None]]] = {
    "cpu": _cpu,
    "mem": _mem,
    "disk": _disk,
    "load": _load,
}


@dataclass(frozen=True, slots=True)
class NodeFilter:
    """A parsed filter. Any term's answer can change with a batch (state, figures, hostname)."""

    text: str
    predicates: tuple[Predicate, ...] = ()

    def __call__(self, row: NodeRow) -> bool:
        """True if ``row`` passes every term."""
        return all(predicate(row) for predicate in self.predicates)

    @property
    def empty(self) -> bool:
        """True if it lets every node through."""
        return not self.predicates


def _haystacks(row: NodeRow) -> tuple[str, ...]:
    return (row.node_id, row.facts.hostname) if row.facts is not None else (row.node_id,)


def labels_of(row: NodeRow) -> Mapping[str, str]:
    """The node's labels; none before its facts arrive, or from an agent started without ``--label``."""
    if row.facts is None or row.facts.labels is None:
        return {}
    return row.facts.labels


def _substring(needle: str) -> Predicate:
    needle = needle.lower()
    state = needle if needle in _STATES else None

    def matches(row: NodeRow) -> bool:
        if state is not None and row.status.state == state:
            return True
        return any(needle in haystack.lower() for haystack in _haystacks(row))

    return matches


def _regex(token: str) -> Predicate:
    if len(token) < 2 or not token.endswith("/"):
        raise FilterError(f"expected a closing / in {token!r}")
    try:
        pattern = re.compile(token[1:-1], re.IGNORECASE)
    except re.error as exc:
        raise FilterError(f"bad regular expression {token!r}: {exc}") from exc
    return lambda row: any(pattern.search(haystack) for haystack in _haystacks(row))


def _state(value: str) -> Predicate:
    if value not in _STATES:
        raise FilterError(f"expected state:online, state:stale or state:offline, got {'state:' + value!r}")
    return lambda row: row.status.state == value


def _label(value: str) -> Predicate:
    key, sep, wanted = value.partition("=")
    if not key:
        raise FilterError(f"expected label:KEY=VALUE or label:KEY, got {'label:' + value!r}")
    if not sep:
        return lambda row: key in labels_of(row)
    return lambda row: labels_of(row).get(key) == wanted


def _comparison(field: str, op: str, value: str) -> Predicate:
    if field not in _METRICS:
        raise FilterError(f"unknown figure {field!r}: expected cpu, mem, disk or load")
    try:
        threshold = float(value)
    except ValueError:
        raise FilterError(f"expected a number after {field + op!r}, got {value!r}") from None
    measure, compare = _METRICS[field], _OPERATORS[op]

    def matches(row: NodeRow) -> bool:
        figure = measure(row) if is_current(row) else None
        return figure is not None and compare(figure, threshold)

    return matches


def _term(token: str) -> Predicate:
    """One term's predicate."""
    if token.startswith("/"):
        return _regex(token)
    if token.startswith('"'):
        if len(token) < 2 or not token.endswith('"'):
            raise FilterError(f"expected a closing quote in {token!r}")
        return _substring(token[1:-1])
    comparison = _COMPARISON.match(token.lower())
    if comparison is not None:
        return _comparison(comparison["field"], comparison["op"], comparison["value"])
    key, sep, value = token.partition(":")
    if sep and key.isalpha():
        if key.lower() == "state":
            return _state(value.lower())
        if key.lower() == "label":
            return _label(value)
        raise FilterError(f"unknown field {key + ':'!r}: expected {_EXPECTED} (quote text with a colon)")
    return _substring(token)


def parse(text: str) -> NodeFilter:
    """Parse the filter box's text; raises FilterError naming the bad term and what is accepted."""
    return NodeFilter(text.strip(), tuple(_term(token) for token in _TOKEN.findall(text.strip())))
