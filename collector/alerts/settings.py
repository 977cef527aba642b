"""Reading one TOML table of the alerts config with errors that name the rule, the key and what it accepts.

``TableReader`` wraps one ``[[alerts.rule]]`` or ``[[alerts.route]]`` table; its
getters check a key's type and say, on a bad value, exactly what was expected:
"alert rule 'cpu_high': key 'for': expected a duration like '5m', got 5".
``parse_duration`` reads Prometheus-style durations ("90s", "5m", "1h30m").

Not here: what a rule or a route means (``collector.alerts.rules``,
``collector.alerts.routes``); this module knows only TOML shapes.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

# Prometheus's duration units (model/time.go ParseDuration), largest first in a value.
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
# Names like Prometheus's alertname: they become label values in /metrics and keys in the store.
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Longest duration accepted: a year. Longer is a typo, and it keeps float seconds exact.
MAX_DURATION_S = 366 * 86400.0


class AlertConfigError(ValueError):
    """A rule or route in the alerts config is refused; the message names the rule, the key and the fix."""


def parse_duration(text: str) -> float:
    """Seconds in ``text`` ("250ms", "30s", "5m", "1h30m", "2d"); raises ValueError on anything else."""
    if not _DURATION.match(text):
        raise ValueError(text)
    seconds = sum(float(number) * _UNIT_S[unit] for number, unit in _DURATION_PART.findall(text))
    if seconds > MAX_DURATION_S:
        raise ValueError(text)
    return seconds


def _show(value: object) -> str:
    """A config value for an error message, truncated: the config may be long, the message should not be."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class TableReader:
    """Typed access to one TOML table, failing with "<what> '<name>': key '<key>': expected X, got Y"."""

    def __init__(self, what: str, table: Mapping[str, Any], allowed: Iterable[str], *, name: str | None = None) -> None:
        self.what = what
        self.table = table
        raw_name = table.get("name") if name is None else name
        self.name = str(raw_name) if raw_name is not None else "?"
        self._allowed = tuple(allowed)
        for key in table:
            if key not in self._allowed:
                self.fail(key, f"expected one of {', '.join(self._allowed)}", f"an unknown key {key!r}")

    def fail(self, key: str, expected: str, got: str) -> NoReturn:
        """Raise the one error type, worded like every other config error."""
        raise AlertConfigError(f"{self.what} {self.name!r}: key {key!r}: {expected}, got {got}")

    def has(self, key: str) -> bool:
        """Whether ``key`` is present in the table."""
        return key in self.table

    def name_key(self) -> str:
        """The table's ``name``: required, and shaped like a Prometheus alertname."""
        value = self.table.get("name")
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            self.fail("name", "expected a name of letters, digits and '_' like 'cpu_high'", _show(value))
        return str(value)

    def string(self, key: str, default: str | None = None, *, choices: Iterable[str] = ()) -> str:
        """A string, one of ``choices`` if given."""
        value = self.table.get(key, default)
        options = tuple(choices)
        if not isinstance(value, str) or (options and value not in options):
            expected = f"expected one of {', '.join(map(repr, options))}" if options else "expected a string"
            self.fail(key, expected, _show(value) if key in self.table else "nothing")
        return str(value)

    def boolean(self, key: str, default: bool) -> bool:
        """``true`` or ``false``."""
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "expected true or false", _show(value))
        return bool(value)

    def number(self, key: str, default: float | None = None) -> float | None:
        """A finite number, or ``default`` when absent."""
        value = self.table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(key, "expected a number like 80 or 0.5", _show(value))
        return float(value)

    def duration(self, key: str, default: str) -> float:
        """A duration string, in seconds."""
        value = self.table.get(key, default)
        seconds = None
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError:
                seconds = None
        if seconds is None:
            self.fail(key, "expected a duration like '5m', '30s' or '1h30m' (at most a year)", _show(value))
        return seconds

    def strings(self, key: str, default: Iterable[str] = ()) -> tuple[str, ...]:
        """A list of strings."""
        value = self.table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, 'expected a list of strings like ["web-*"]', _show(value))
        return tuple(value)

    def globs(self, key: str) -> tuple[str, ...]:
        """A list of fnmatch patterns (``web-*``, ``db-[0-9]``), each checked to compile."""
        patterns = self.strings(key)
        for pattern in patterns:
            if not pattern:
                self.fail(key, "expected non-empty patterns like 'web-*'", _show(pattern))
            fnmatch.translate(pattern)  # never raises: fnmatch escapes what it cannot read
        return patterns

    def label_map(self, key: str) -> tuple[tuple[str, str], ...]:
        """An inline table of label name to value glob: ``{ role = "db", zone = "eu-*" }``."""
        value = self.table.get(key, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.fail(key, 'expected a table of label = "value glob" like { role = "db" }', _show(value))
        return tuple(sorted(value.items()))


def label_selector_matches(selector: tuple[tuple[str, str], ...], labels: Mapping[str, str]) -> bool:
    """Whether every ``(name, glob)`` of ``selector`` matches the node's label of that name."""
    for name, pattern in selector:
        value = labels.get(name)
        if value is None or not fnmatch.fnmatchcase(value, pattern):
            return False
    return True


def node_selector_matches(include: tuple[str, ...], exclude: tuple[str, ...], node_id: str) -> bool:
    """Whether ``node_id`` matches one ``include`` glob (or there are none) and no ``exclude`` glob."""
    if include and not any(fnmatch.fnmatchcase(node_id, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(node_id, pattern) for pattern in exclude)
